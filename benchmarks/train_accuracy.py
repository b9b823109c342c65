"""Benchmark: the zoo's default training recipe on the real MNIST set against Brevitas' published bnn_pynq
accuracies, each run within a CPU budget.

Usage: .venv/bin/python benchmarks/train_accuracy.py [--data-dir DIR] [--threads N] [--only tfc-w1a1 ...]
       [--epochs N] [--teacher-epochs N] [--out build/bench-acc]
Each run is `bnnflow train --model M --wbits W --abits A --dataset mnist --epochs E --batch-size B
--teacher-epochs T --threads N` with the default recipe (distill: a float teacher, one-cycle, no dropout, shifted
images); RUNS gives each run's settings, the flags override them. The accuracy reported is the final epoch's:
the model shipped.
Writes OUT/train_accuracy.json (one record per run, merged with earlier runs) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from bnnflow.training.config import TrainConfig
from bnnflow.training.data import load_dataset
from bnnflow.training.train import train

# name -> (model, wbits, abits, published top-1 %, epochs, batch size, teacher epochs, torch threads): each run
# fits the 60-minute budget on the 2-core machine. One thread runs two of them at a time, one a core; the runs with
# two threads have the machine to themselves and fit more epochs.
RUNS = {
    "tfc-w1a1": ("tfc", 1, 1, 93.17, 80, 100, 10, 1),
    "tfc-w1a2": ("tfc", 1, 2, 94.79, 80, 100, 10, 1),
    "tfc-w2a2": ("tfc", 2, 2, 96.60, 80, 100, 10, 1),
    "sfc-w1a1": ("sfc", 1, 1, 97.81, 240, 100, 10, 1),
    "sfc-w1a2": ("sfc", 1, 2, 98.31, 240, 100, 10, 1),
    "sfc-w2a2": ("sfc", 2, 2, 98.66, 240, 100, 20, 1),
    "lfc-w1a1": ("lfc", 1, 1, 98.88, 80, 200, 10, 1),
    "lfc-w1a2": ("lfc", 1, 2, 98.99, 140, 200, 20, 2),
}
BUDGET_S = 60 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None, help="Override every run's torch threads.")
    parser.add_argument("--epochs", type=int, default=None, help="Override every run's epochs.")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="Override every run's teacher epochs.")
    parser.add_argument("--out", type=Path, default=Path("build/bench-acc"))
    parser.add_argument("--only", nargs="*", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    data = load_dataset("mnist", args.data_dir)
    record = args.out / "train_accuracy.json"
    results = json.loads(record.read_text())["results"] if record.is_file() else {}
    for name in args.only:
        model, wbits, abits, target, epochs, batch, teacher_epochs, threads = RUNS[name]
        epochs = args.epochs or epochs
        teacher_epochs = args.teacher_epochs or teacher_epochs
        threads = args.threads or threads
        cfg = TrainConfig(model=model, wbits=wbits, abits=abits, dataset="mnist", epochs=epochs, batch_size=batch,
                          teacher_epochs=teacher_epochs, threads=threads, out_dir=args.out / name,
                          progress=False)  # fmt: skip
        began = time.perf_counter()
        result = train(cfg, log=lambda line, n=name: print(f"{n}: {line}", flush=True), data=data)
        wall = time.perf_counter() - began
        final = result.metrics["final_test_acc"]
        results[name] = {
            "command": f"bnnflow train --model {model} --wbits {wbits} --abits {abits} --dataset mnist "
            f"--epochs {epochs} --batch-size {batch} --teacher-epochs {teacher_epochs} --threads {threads}",
            "epochs": epochs,
            "teacher_epochs": teacher_epochs,
            "threads": threads,
            "batch_size": batch,
            "recipe": result.metrics["config"]["recipe"],
            "teacher_test_acc": (result.metrics["teacher"] or {}).get("test_acc"),
            "final_test_acc": final,
            "target": target,
            "gap": round(final - target, 2),
            "wall_s": round(wall, 1),
            "within_budget": wall <= BUDGET_S,
        }
        print(json.dumps({name: results[name]}), flush=True)
        machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
        args.out.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print("\n| run | epochs | test % (final epoch, shipped) | bnn_pynq % | difference | wall time (teacher included) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['epochs']} | {r['final_test_acc']:.2f} | {r['target']:.2f} | {r['gap']:+.2f} "
              f"| {r['wall_s'] / 60:.1f} min |")  # fmt: skip


if __name__ == "__main__":
    main()
