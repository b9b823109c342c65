"""Benchmark: train to bitstream. TFC-w1a1 trained on real MNIST, exported, built by FINN to a cycle budget, its
RTL written once and simulated in Verilator, then open-tool bitstreams (Yosys + nextpnr) for iCE40 and ECP5 parts,
each after its board self-test passed in Verilator. Prints a Markdown table for BENCHMARKS.md and writes
bitstream.json with every stage's wall time.

Usage: .venv/bin/python benchmarks/bitstream.py [--epochs 60] [--target-cycles-per-frame 2000]
       [--targets ice40-up5k ecp5-25k] [--checkpoint CKPT (skip training)] [--out build/bench-bitstream]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from bnnflow.bitstream import make_bitstream
from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from bnnflow.training.config import TrainConfig
from bnnflow.training.export import export_checkpoint
from bnnflow.training.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--checkpoint", type=Path, help="A trained TFC-w1a1 (skips training).")
    parser.add_argument("--target-cycles-per-frame", type=int, default=2000)
    parser.add_argument("--targets", nargs="*", default=["ice40-up5k", "ecp5-25k"])
    parser.add_argument("--images", type=int, default=4, help="Test images in the self-test ROM.")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("build/bench-bitstream"))
    args = parser.parse_args()
    wall: dict[str, float] = {}
    began = time.perf_counter()
    checkpoint = args.checkpoint
    accuracy = None
    if checkpoint is None:
        cfg = TrainConfig(model="tfc", wbits=1, abits=1, dataset="mnist", data_dir=args.data_dir,
                          epochs=args.epochs, batch_size=100, lr=0.02, out_dir=args.out / "train", progress=False,
                          golden_samples=64)  # fmt: skip
        trained = train(cfg)
        checkpoint, accuracy = trained.checkpoint, trained.metrics["final_test_acc"]
        wall["train"] = round(time.perf_counter() - began, 1)
    t = time.perf_counter()
    exported = export_checkpoint(checkpoint, args.out / "export", args.data_dir)
    wall["export"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    bcfg = BuildConfig(output_dir=args.out / "build", target_cycles_per_frame=args.target_cycles_per_frame,
                       verify_samples=8)  # fmt: skip
    build(exported.model_path, bcfg)
    wall["build"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    design = write_rtl(bcfg.output_dir)
    wall["rtl"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    sim = simulate(SimConfig(build_dir=bcfg.output_dir, cppsim=False))
    wall["sim"] = round(time.perf_counter() - t, 1)
    rows: list[dict[str, Any]] = []
    for target in args.targets:
        t = time.perf_counter()
        run = make_bitstream(bcfg.output_dir, target, frames=args.images)
        wall[f"bitstream {target}"] = round(time.perf_counter() - t, 1)
        row = run.report.to_dict()
        row["selftest_uart"] = run.selftest.uart.strip() if run.selftest else None
        rows.append(row)
    wall["total"] = round(time.perf_counter() - began, 1)
    result = {
        "machine": platform.platform(),
        "accuracy": accuracy,
        "rtl_hash": design.rtl_hash,
        "sim": {
            "mismatches": sim.mismatches_vs_finn,
            "measured_ii": sim.measured_ii,
            "expected_ii": sim.expected_ii,
            "latency": sim.latency_cycles,
            "expected_latency": sim.expected_latency,
        },
        "rows": rows,
        "wall_s": wall,
    }
    (args.out / "bitstream.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| target (board) | bitstream | logic | block RAM | Fmax (requested) | frames/s at that clock | self-test |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        util = r["utilisation"]
        logic = util.get("ICESTORM_LC") or util.get("TRELLIS_COMB")
        ram = util.get("ICESTORM_RAM") or util.get("DP16KD")
        fmax = f"{r['fmax_mhz']:.1f} MHz ({r['requested_mhz']:g})"
        print(f"| {r['target']} ({r['board']}) | {r['bitstream_bytes']:,} B "
              f"| {logic['used']:,} / {logic['available']:,} | {ram['used']} / {ram['available']} | {fmax} "
              f"| {r['fps_at_requested_clock']:,.0f} | {r['selftest_uart']} |")  # fmt: skip
    print(json.dumps(wall))


if __name__ == "__main__":
    main()
