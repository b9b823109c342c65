"""Benchmark: Fmax and utilisation of two small 32x32 networks on the open-tool parts (ECP5-25k, iCE40 UP5K), each
built by bnnflow at one or more foldings, its board self-test passed in Verilator, then synthesized, placed and
routed by the project's own bitstream flow (bnnflow.bitstream.make_bitstream, as `bnnflow bitstream` does).

Networks (random weights, calibrated statistics; tests/lightweight.py and tests/byon.py build them):
  dwnet  depthwise-separable CNN, tests.lightweight.dwnet(channels=8, res=32), UINT8 pixels on the wire
  cnn    conv8-pool-conv8-pool-dense10, 1-bit weights, 2-bit activations (tests.byon.Net)

Usage: .venv/bin/python benchmarks/fmax_lightweight.py [--networks dwnet cnn] [--folds 8000 20000]
       [--targets ecp5-25k ice40-up5k] [--out build/bench-fmax-lightweight]
Prints a Markdown table (one row per network, folding and part) and writes fmax_lightweight.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.lightweight, tests.byon: the networks

from bnnflow.bitstream import make_bitstream
from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.errors import BnnflowError
from bnnflow.hw.generate import write_rtl
from tests import lightweight as lw
from tests.byon import Act, Conv, Net, export_net

RES = 32


def export(name: str, out: Path, samples: int) -> tuple[Path, dict[str, Any]]:
    """The exported model directory and the BuildConfig options its input needs."""
    if name == "dwnet":
        shape = (3, RES, RES)
        # Pixels arrive as UINT8 and the model saw them as k/255: the build folds that scale into the input.
        return lw.export(lw.dwnet(channels=8, res=RES), lw.float_images(shape, samples), out), {
            "input_datatype": "UINT8", "input_scale": 255}  # fmt: skip
    if name == "cnn":
        act = Act("identity", 2)
        net = Net((3, RES, RES), act, convs=(Conv(8, 3, pool=(2, 2), act=act), Conv(8, 3, pool=(2, 2), act=act)),
                  dense=(), classes=10, wbits=1)  # fmt: skip
        return export_net(net, out, samples=samples), {}
    raise SystemExit(f"unknown network {name}; choose dwnet or cnn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="*", default=["dwnet", "cnn"])
    parser.add_argument(
        "--folds",
        nargs="*",
        type=int,
        default=[8000],
        help="target_cycles_per_frame values to build each network at (small parts need folding).",
    )
    parser.add_argument("--targets", nargs="*", default=["ecp5-25k", "ice40-up5k"])
    parser.add_argument("--samples", type=int, default=4, help="Golden images per network (the self-test's ROM).")
    parser.add_argument("--out", type=Path, default=Path("build/bench-fmax-lightweight"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for name in args.networks:
        src, options = export(name, args.out / name / "src", args.samples)
        for fold in args.folds:
            build_dir = args.out / name / f"fold-{fold}"
            began = time.perf_counter()
            build(src / "model.onnx", BuildConfig(output_dir=build_dir, target_cycles_per_frame=fold,
                                                  verify_samples=args.samples, **options))  # fmt: skip
            write_rtl(build_dir)
            built = round(time.perf_counter() - began, 1)
            for target in args.targets:
                t = time.perf_counter()
                row: dict[str, Any] = {"network": name, "fold": fold, "target": target, "build_s": built}
                try:
                    run = make_bitstream(build_dir, target, frames=args.samples)
                    row.update(run.report.to_dict(), fits=True)
                    row["selftest_uart"] = run.selftest.uart.strip() if run.selftest else None
                except BnnflowError as err:  # a design that does not fit is a result of the benchmark
                    row.update(fits=False, error=str(err))
                row["bitstream_s"] = round(time.perf_counter() - t, 1)
                rows.append(row)
                print(json.dumps({k: row.get(k) for k in ("network", "fold", "target", "fmax_mhz", "fits",
                                                          "critical_path", "error")}), flush=True)  # fmt: skip
    result = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}", "rows": rows}
    (args.out / "fmax_lightweight.json").write_text(json.dumps(result, indent=1) + "\n")
    print(
        "| network | folding (cycles/frame target -> II) | part | fits | Fmax MHz | logic | FF | block RAM "
        "| critical path |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        if not r["fits"]:
            print(f"| {r['network']} | {r['fold']} | {r['target']} | no: {r['error'][:120]} | | | | | |")
            continue
        util = r["utilisation"]
        logic = util.get("ICESTORM_LC") or util.get("TRELLIS_COMB")
        ff = util.get("TRELLIS_FF") or {"used": "-", "available": "-"}  # iCE40: flip-flops live in ICESTORM_LC
        ram = util.get("ICESTORM_RAM") or util.get("DP16KD")
        path = r["critical_path"]
        print(f"| {r['network']} | {r['fold']} -> {r['ii_cycles']} | {r['target']} | yes | {r['fmax_mhz']:.1f} "
              f"| {logic['used']:,} / {logic['available']:,} | {ff['used']} / {ff['available']} "
              f"| {ram['used']} / {ram['available']} | {path['start']} -> {path['end']} |")  # fmt: skip


if __name__ == "__main__":
    main()
