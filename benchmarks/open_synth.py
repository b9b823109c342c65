"""Benchmark: open synthesis (Yosys read_slang + synth_xilinx -family xc7) of generated accelerators, against
FINN's resource estimates for the same folded graphs.

Usage: .venv/bin/python benchmarks/open_synth.py [--out build/bench-synth] [--only tfc-w1a1-1000 ...]
Weights are random (resources do not depend on their values beyond constant folding of tiny memories; the
trained TFC-w1a1 can be passed with --checkpoint). Prints a Markdown table for BENCHMARKS.md and writes
open_synth.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.synth import synthesize_build
from bnnflow.training.data import Dataset, load_digits
from bnnflow.training.export import export
from bnnflow.training.models import build_model, randomize_batchnorm, zoo_spec

# name -> (model, wbits, abits, target cycles per frame; None = fully folded)
RUNS = {
    "tfc-w1a1-full": ("tfc", 1, 1, None),
    "tfc-w1a1-1000": ("tfc", 1, 1, 1000),
    "tfc-w2a2-1000": ("tfc", 2, 2, 1000),
    "sfc-w1a1-4000": ("sfc", 1, 1, 4000),
    "lfc-w1a1-40000": ("lfc", 1, 1, 40000),
}


def _export(name: str, wbits: int, abits: int, out: Path) -> Path:
    torch.manual_seed(11)
    model = build_model(zoo_spec(name, wbits, abits, (1, 28, 28)))
    randomize_batchnorm(model, seed=11)
    digits = load_digits().test_x[:4]
    rows, cols = np.arange(28) * 8 // 28, np.arange(28) * 8 // 28
    images = digits[:, :, rows][:, :, :, cols].astype(np.uint8)
    labels = np.zeros(len(images), dtype=np.int64)
    return export(model.eval(), Dataset("digits", images, labels, images, labels), out, golden_samples=4).model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/bench-synth"))
    parser.add_argument("--only", nargs="*", default=list(RUNS))
    args = parser.parse_args()
    rows = []
    for run in args.only:
        name, wbits, abits, cycles = RUNS[run]
        out = args.out / run
        model_path = _export(name, wbits, abits, out / "model")
        build(model_path, BuildConfig(output_dir=out / "dataflow", target_cycles_per_frame=cycles, verify=False))
        began = time.perf_counter()
        report = synthesize_build(out / "dataflow")
        wall = time.perf_counter() - began
        estimates = json.loads((out / "dataflow" / "estimates.json").read_text())
        util, finn = report["yosys"], report["finn_estimate"]
        rows.append(
            {
                "run": run,
                "ii_cycles": estimates["initiation_interval_cycles"],
                "yosys": util,
                "finn": finn,
                "synth_wall_s": round(wall, 1),
            }
        )
        print(f"{run}: {util['luts']} LUTs, {util['ffs']} FFs, {util['bram18']} BRAM18 in {wall:.1f} s", flush=True)
    (args.out / "open_synth.json").write_text(json.dumps({"machine": platform.processor(), "runs": rows}, indent=2))
    print("\n| design | II (cycles) | Yosys LUT | FF | CARRY4 | LUT-RAM cells | BRAM18 | DSP | FINN est. LUT | BRAM18 "
          "| synth time |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        u, f = r["yosys"], r["finn"] or {}
        print(
            f"| {r['run']} | {r['ii_cycles']} | {u['luts']} | {u['ffs']} | {u['carry4']} | {u['lutram_cells']} | "
            f"{u['bram18']} | {u['cells'].get('DSP48E1', 0)} | {f.get('LUT', '?')} | {f.get('BRAM_18K', '?')} | "
            f"{r['synth_wall_s']} s |"
        )


if __name__ == "__main__":
    main()
