"""Benchmark: QAT on the real MNIST set against Brevitas' published bnn_pynq accuracies.

Usage: .venv/bin/python benchmarks/train_accuracy.py [--data-dir DIR] [--threads N] [--only tfc-w1a1 ...]
Writes build/bench/train_accuracy.json and prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from bnnflow.training.config import TrainConfig
from bnnflow.training.data import load_dataset
from bnnflow.training.train import train

# name -> (model, wbits, abits, published top-1 %, epochs of our schedule)
RUNS = {
    "tfc-w1a1": ("tfc", 1, 1, 93.17, 60),
    "tfc-w2a2": ("tfc", 2, 2, 96.60, 150),
    "sfc-w1a1": ("sfc", 1, 1, 97.81, 120),
}
BUDGET_S = 45 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--only", nargs="*", default=list(RUNS))
    args = parser.parse_args()
    data = load_dataset("mnist", args.data_dir)
    results = []
    for name in args.only:
        model, wbits, abits, target, epochs = RUNS[name]
        cfg = TrainConfig(
            model=model,
            wbits=wbits,
            abits=abits,
            dataset="mnist",
            epochs=epochs,
            lr=0.02,
            threads=args.threads,
            out_dir=args.out / name,
            progress=False,
        )
        began = time.perf_counter()
        result = train(cfg, log=print, data=data)
        wall = time.perf_counter() - began
        history = result.metrics["epochs"]
        reached = next((h for h in history if h["test_acc"] >= target), None)
        row = {
            "run": name,
            "target": target,
            "epochs": epochs,
            "final_test_acc": history[-1]["test_acc"],
            "best_test_acc": max(h["test_acc"] for h in history),
            "wall_s": round(wall, 1),
            "target_epoch": reached["epoch"] if reached else None,
            "target_wall_s": round(sum(h["seconds"] for h in history[: reached["epoch"]]), 1) if reached else None,
            "within_budget": wall <= BUDGET_S,
        }
        results.append(row)
        print(json.dumps(row))
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"train_accuracy-{'_'.join(args.only)}.json").write_text(
        json.dumps({"machine": machine, "results": results}, indent=2)
    )
    print(f"\nmachine: {machine}\n")
    print("| run | epochs | final test % | best test % | target % | target reached at | wall time |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in results:
        at = f"epoch {r['target_epoch']} ({r['target_wall_s']:.0f} s)" if r["target_epoch"] else "not reached"
        print(
            f"| {r['run']} | {r['epochs']} | {r['final_test_acc']:.2f} | {r['best_test_acc']:.2f} "
            f"| {r['target']:.2f} | {at} | {r['wall_s'] / 60:.1f} min |"
        )


if __name__ == "__main__":
    main()
