"""Benchmark: Brevitas' own bnn_pynq networks (FINN's end-to-end test models), exported from float images in
[0, 1] as bnn_pynq trains them, through bnnflow build and RTL simulation, fully folded and at a parallel folding.

Usage: .venv/bin/python benchmarks/bring_your_own.py [--only tfc_1w1a,sfc_2w2a] [--samples 8] [--out build/byon]
Random weights and BatchNorm statistics (the pretrained checkpoints cannot be downloaded here). Prints a markdown
table (output elements compared, RTL vs FINN mismatches, host + RTL vs PyTorch, cycles) and writes byon.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.byon: the network builders

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from tests.byon import bnn_pynq

CONFIGS = [f"{n}_{b}" for n in ("tfc", "sfc", "cnv") for b in ("1w1a", "1w2a", "2w2a")] + ["lfc_1w1a", "lfc_1w2a"]
PARALLEL = {"tfc": 1000, "sfc": 4000, "lfc": 40000, "cnv": 400000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=None, help="Comma-separated configurations (default: all 11).")
    parser.add_argument("--samples", type=int, default=8, help="Golden images per network.")
    parser.add_argument("--out", type=Path, default=Path("build/byon"))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else CONFIGS
    rows = []
    for name in names:
        src = bnn_pynq(name, args.out / name / "src", samples=args.samples)
        for fold in (None, PARALLEL[name.split("_")[0]]):
            out = args.out / name / f"fold-{fold or 'full'}"
            began = time.perf_counter()
            build(src / "model.onnx", BuildConfig(output_dir=out, target_cycles_per_frame=fold, verify_samples=4))
            built = time.perf_counter() - began
            write_rtl(out)
            report = simulate(SimConfig(build_dir=out, cppsim=False))
            vs = report.vs_pytorch
            row = {
                "network": name,
                "folding": "fully folded" if fold is None else f"{fold} cycles",
                "frames": report.frames,
                "output_elements": int(report.outputs.size),
                "rtl_vs_finn_mismatches": report.mismatches_vs_finn,
                "vs_pytorch": vs.to_dict() if vs else None,
                "expected_ii": report.expected_ii,
                "measured_ii": report.measured_ii,
                "build_s": round(built, 1),
                "sim_s": round(time.perf_counter() - began - built, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}", "rows": rows}
    (args.out / "byon.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        "| network | folding | frames | RTL vs FINN: differing / elements | host+RTL vs PyTorch: top-1 divergent "
        "| near-ties | II measured / FINN | build s | sim s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vs = r["vs_pytorch"]
        print(f"| {r['network']} | {r['folding']} | {r['frames']} | {r['rtl_vs_finn_mismatches']} / "
              f"{r['output_elements']} | {vs['top1_divergent']} | {vs['near_ties']} | "
              f"{r['measured_ii']:.0f} / {r['expected_ii']} | {r['build_s']} | {r['sim_s']} |")  # fmt: skip


if __name__ == "__main__":
    main()
