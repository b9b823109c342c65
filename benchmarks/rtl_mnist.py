"""Benchmark: a trained TFC-w1a1 as RTL in Verilator over the whole MNIST test set (10,000 images).

Usage: .venv/bin/python benchmarks/rtl_mnist.py --checkpoint build/bench/tfc-w1a1/checkpoint.pt
       [--target-cycles-per-frame 1000] [--out build/bench-rtl]
Prints the Verilator wall time, top-1 agreement with PyTorch, accuracy and cycles; writes rtl_mnist.json.
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
from bnnflow.hw.generate import write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from bnnflow.training.data import load_dataset
from bnnflow.training.export import export
from bnnflow.training.train import model_from_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=Path("build/bench/tfc-w1a1/checkpoint.pt"))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--target-cycles-per-frame", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("build/bench-rtl"))
    parser.add_argument("--limit", type=int, default=None, help="Only the first N test images.")
    args = parser.parse_args()
    model, _ = model_from_checkpoint(args.checkpoint)
    data = load_dataset("mnist", args.data_dir)
    exported = export(model, data, args.out, golden_samples=16)
    cfg = BuildConfig(output_dir=args.out / "dataflow", target_cycles_per_frame=args.target_cycles_per_frame)
    build(exported.model_path, cfg)
    write_rtl(cfg.output_dir)
    n = args.limit or len(data.test_y)
    x = data.test_x[:n].reshape(n, -1).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    began = time.perf_counter()
    report = simulate(SimConfig(build_dir=cfg.output_dir), inputs=x, torch_outputs=logits)
    total = time.perf_counter() - began
    rtl = report.outputs[:, 0]
    result = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "images": n,
        "rtl_vs_finn_mismatching_elements": report.mismatches_vs_finn,
        "rtl_top1_differs_from_pytorch_tie_aware": report.vs_pytorch.top1_divergent if report.vs_pytorch else None,
        "rtl_top1_differs_from_pytorch_argmax": int((rtl != logits.argmax(1)).sum()),
        "pytorch_images_with_tied_max": int(((logits == logits.max(1, keepdims=True)).sum(1) > 1).sum()),
        "rtl_accuracy": float((rtl == data.test_y[:n]).mean() * 100),
        "pytorch_accuracy": float((logits.argmax(1) == data.test_y[:n]).mean() * 100),
        "measured_ii_cycles": report.measured_ii,
        "expected_ii_cycles": report.expected_ii,
        "latency_cycles": report.latency_cycles,
        "expected_latency_cycles": report.expected_latency,
        "rtl_hash": report.rtl_hash,
        "simulated_cycles": report.total_cycles,
        "verilator_run_s": report.wall_s,
        "simulate_total_s": round(total, 1),
    }
    (args.out / "rtl_mnist.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
