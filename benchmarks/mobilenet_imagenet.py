"""Benchmark: Brevitas' own MobileNet-v1 (brevitas_examples, quant_mobilenet_v1_4b: 8-bit first layer and
classifier, 4-bit depthwise and pointwise layers, FLOOR TruncAvgPool2d) at ImageNet size, from the exported QONNX
file to frames simulated in Verilator, every output element compared with PyTorch.

Usage: .venv/bin/python benchmarks/mobilenet_imagenet.py [--width 1.0] [--res 224] [--cycles 600000] [--frames 3]
       [--synth] [--out build/mobilenet]
Random weights and BatchNorm statistics (the pretrained checkpoint cannot be downloaded here); images arrive as
pixels (UINT8, scale 255), so the first layer is hardware; no label select, so all 1,000 logits are compared.
Prints the times of each stage, cycles per frame, peak memory, FINN's LUT/BRAM estimate and (with --synth) Yosys'
count, and writes mobilenet.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.lightweight: the network builders

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.fileio import write_text
from bnnflow.hw.generate import write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from tests.lightweight import export, float_images, mobilenet_v1


def _peak_gib() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {"python_gib": round(own, 2), "largest_child_gib": round(children, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--res", type=int, default=224)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=600000, help="SetFolding's target cycles per frame")
    parser.add_argument("--frames", type=int, default=3, help="frames simulated (the II is measured from 3)")
    parser.add_argument("--synth", action="store_true", help="also count cells with Yosys (synth_xilinx)")
    parser.add_argument("--out", type=Path, default=Path("build/mobilenet"))
    args = parser.parse_args()
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    model = mobilenet_v1(args.width, args.res, args.classes)
    export(model, float_images((3, args.res, args.res), args.frames), args.out / "src")
    times["export_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    cfg = BuildConfig(output_dir=args.out / "build", target_cycles_per_frame=args.cycles, verify_samples=args.frames,
                      input_datatype="UINT8", input_scale=255, label_select=False)  # fmt: skip
    build(args.out / "src" / "model.onnx", cfg, log=print)
    times["build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    write_rtl(args.out / "build")
    times["rtl_s"] = time.perf_counter() - t
    t = time.perf_counter()
    report = simulate(SimConfig(build_dir=args.out / "build", cppsim=False))
    times["sim_total_s"] = time.perf_counter() - t
    times["sim_run_s"] = report.wall_s
    estimates = json.loads((args.out / "build" / "estimates.json").read_text())
    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "network": f"MobileNet-v1 w{args.width} {args.res}x{args.res}, {args.classes} classes",
        "cycles_target": args.cycles,
        "times": {k: round(v, 1) for k, v in times.items()},
        "frames": report.frames,
        "differing_elements_vs_finn": report.mismatches_vs_finn,
        "vs_pytorch_ok": bool(report.vs_pytorch is not None and report.vs_pytorch.ok),
        "elements": int(report.outputs.size),
        "measured_ii": report.measured_ii,
        "expected_ii": report.expected_ii,
        "slowest_layer": report.slowest_layer,
        "latency_cycles": report.latency_cycles,
        "finn_estimate_total": estimates.get("total"),
        "peak_memory": _peak_gib(),
    }
    if args.synth:
        from bnnflow.hw.synth import synthesize_build

        t = time.perf_counter()
        result["yosys"] = synthesize_build(args.out / "build", "xc7")
        times["synth_s"] = time.perf_counter() - t
        result["times"] = {k: round(v, 1) for k, v in times.items()}
    text = json.dumps(result, indent=2, default=str)
    write_text(args.out / "mobilenet.json", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
