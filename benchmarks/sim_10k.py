"""Benchmark: `bnnflow sim` of a TFC-w1a1 over all 10,000 MNIST test images, as a user runs it.

Usage: .venv/bin/python benchmarks/sim_10k.py --checkpoint CKPT [--data-dir DIR] [--out build/bench-sim10k]
Runs `bnnflow export CKPT --golden-samples 10000`, `bnnflow build --target-cycles-per-frame 1000`, then
`bnnflow sim BUILD` twice: first from a fresh build directory with an empty model cache (Verilator compiles the
design), then again (the cached model). Each command's wall time is measured around the whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

BNNFLOW = Path(sys.executable).with_name("bnnflow")


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    proc = subprocess.run([str(BNNFLOW), *args], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"bnnflow {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return round(wall, 1), proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("build/bench-sim10k"))
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    env = {**os.environ, "BNNFLOW_CACHE_DIR": str((args.out / "cache").resolve())}
    data = ["--data-dir", str(args.data_dir)] if args.data_dir else []
    export_s, _ = timed(["export", str(args.checkpoint), "--out", str(args.out / "export"),
                         "--golden-samples", "10000", *data], env)  # fmt: skip
    build_s, _ = timed(["build", str(args.out / "export" / "model.onnx"), "--out", str(args.out / "build"),
                        "--target-cycles-per-frame", "1000"], env)  # fmt: skip
    first_s, first = timed(["sim", str(args.out / "build")], env)
    repeat_s, repeat = timed(["sim", str(args.out / "build")], env)
    report = json.loads((args.out / "build" / "sim" / "report.json").read_text())
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "frames": report["frames"],
        "output_elements": report["output_elements"],
        "differing_elements": report["mismatches_vs_finn"],
        "vs_pytorch": report["vs_pytorch"],
        "reference": report["reference"],
        "measured_ii": report["measured_ii_cycles"],
        "export_10000_s": export_s,
        "build_s": build_s,
        "sim_fresh_s": first_s,
        "sim_repeat_s": repeat_s,
    }
    (args.out / "sim_10k.json").write_text(json.dumps(result, indent=2) + "\n")
    print(first.splitlines()[0])
    print(repeat.splitlines()[0])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
