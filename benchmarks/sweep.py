"""The design-space benchmark: the 24 points of benchmarks/sweep_mnist.yaml on the embedded Dask cluster, then the
same points one after another in one process, then the report. Prints both wall times and the Pareto front.

    .venv/bin/python benchmarks/sweep.py [--out build/bench] [--skip-serial]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bnnflow.pareto import pareto_front
from bnnflow.report import write_report
from bnnflow.sweep import RUNS, load_points, point_row, run_sweep

SWEEP = Path(__file__).with_name("sweep_mnist.yaml")


def last_full_run(sweep_dir: Path) -> dict | None:
    """The last invocation that ran every point (a resumed run's time is not the sweep's)."""
    runs = json.loads((sweep_dir / RUNS).read_text()) if (sweep_dir / RUNS).is_file() else []
    full = [r for r in runs if r["skipped"] == 0 and r["ran"] == r["points"]]
    return full[-1] if full else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--skip-serial", action="store_true")
    args = parser.parse_args()
    dask_dir, serial_dir = args.out / "sweep-dask", args.out / "sweep-serial"
    run_sweep(SWEEP, dask_dir)
    if not args.skip_serial:
        run_sweep(SWEEP, serial_dir, serial=True)
    for name, path in (("dask", dask_dir), ("serial", serial_dir)):
        run = last_full_run(path) if path.is_dir() else None
        if run:
            print(
                f"{name:7s} {run['points']} points in {run['wall_s']:.0f} s on {run['where']}, {run['failed']} failed"
            )
    print(f"report  {write_report(dask_dir)}")
    rows = [point_row(p) for p in load_points(dask_dir) if p["status"] == "ok"]
    cycles = [float(r["measured_ii"] or r["estimated_ii"]) for r in rows]
    front = pareto_front(cycles, [float(r["accuracy"]) for r in rows])
    print("Pareto front (accuracy against measured cycles per frame):")
    print(f"  {'point':52s} {'acc %':>6s} {'cycles':>7s} {'LUTs':>6s} {'FFs':>6s} {'BRAM18':>6s}")
    for i in front:
        r = rows[i]
        print(f"  {r['label']:52s} {r['accuracy']:6.2f} {cycles[i]:7.0f} {r['luts']:>6} {r['ffs']:>6} {r['bram']:>6}")


if __name__ == "__main__":
    main()
