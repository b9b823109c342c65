"""Benchmark: hardware-aware pruning against the unpruned network and unstructured pruning, on real MNIST.

Usage: .venv/bin/python benchmarks/pruning.py [--only sfc-w1a1 ...] [--threads 1] [--out build/bench/pruning]

For each network: train it unpruned (or reuse OUT/<net>/dense/checkpoint.pt), fold it with FINN's SetFolding to
the cycle budget below (the folding budget every variant keeps), then prune with each method, build with that
same folding, simulate 32 golden MNIST test images in Verilator (every output element against FINN and
PyTorch), synthesize with Yosys (synth_xilinx, xc7) and count weight-memory bits. The unstructured baseline is
pruned to the per-layer sparsity the tile method reached. Writes OUT/pruning.json, a Markdown table on stdout,
and benchmarks/results/pruning_{cycles,luts}.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import write_rtl
from bnnflow.hw.synth import synthesize_build
from bnnflow.prune import prune
from bnnflow.sim.harness import SimConfig, simulate
from bnnflow.training.config import TrainConfig
from bnnflow.training.prune import PruneConfig
from bnnflow.training.train import train

# name -> (model, wbits, abits, cycles-per-frame budget of the folding, node-pruning sparsity)
NETS = {
    "sfc-w1a1": ("sfc", 1, 1, 4000, 0.67),
    "tfc-w1a1": ("tfc", 1, 1, 4000, 0.5),
    "sfc-w2a2": ("sfc", 2, 2, 4000, 0.67),
    "tfc-w2a2": ("tfc", 2, 2, 4000, 0.5),
}
SPEEDUP = 3.0
SCHEDULE = {"steps": 4, "epochs_per_step": 3, "finetune_epochs": 10, "lr": 0.01}
DENSE_EPOCHS = 60
RESULTS = Path(__file__).parent / "results"


def weight_bits(rtl_dir: Path) -> int:
    """Bits of every weight (and sparse schedule) memory of a generated design."""
    design = json.loads((rtl_dir / "manifest.json").read_text())
    total = 0
    for layer in design["layers"]:
        params = layer["params"]
        if not str(layer["module"]).startswith("bnn_mvau"):
            continue
        words = len((rtl_dir / params["WEIGHT_FILE"]).read_text().split())
        total += words * int(params["PE"]) * int(params["SIMD"]) * int(params["WBITS"])
        if params.get("SCHED_FILE"):
            sched = (rtl_dir / params["SCHED_FILE"]).read_text().split()
            sf = int(params["MW"]) // int(params["SIMD"])
            total += len(sched) * (max(1, (sf - 1).bit_length()) + 2)
    return total


def measure(build_dir: Path) -> dict[str, Any]:
    sim = simulate(SimConfig(build_dir=build_dir, cppsim=False))
    synth = synthesize_build(build_dir)
    estimates = json.loads((build_dir / "estimates.json").read_text())
    vs = sim.vs_pytorch
    return {
        "rtl_mismatches_vs_finn": sim.mismatches_vs_finn,
        "rtl_vs_pytorch_mismatches": (vs.mismatches + vs.top1_divergent) if vs else None,
        "rtl_vs_pytorch_kind": vs.kind if vs else None,
        "rtl_vs_pytorch_elements": vs.elements if vs else None,
        "near_ties": vs.near_ties if vs else None,
        "frames": sim.frames,
        "measured_ii": sim.measured_ii,
        "estimated_ii": estimates["initiation_interval_cycles"],
        "finn_lut_estimate": estimates["total"]["LUT"],
        "luts": synth["yosys"]["luts"],
        "ffs": synth["yosys"]["ffs"],
        "bram18": synth["yosys"]["bram18"],
        "lutram_cells": synth["yosys"]["lutram_cells"],
        "weight_bits": weight_bits(build_dir / "rtl"),
    }


def dense_checkpoint(net: str, out: Path, threads: int) -> Path:
    model, wbits, abits, _, _ = NETS[net]
    ckpt = out / net / "dense" / "checkpoint.pt"
    if not ckpt.is_file():
        cfg = TrainConfig(model=model, wbits=wbits, abits=abits, dataset="mnist", epochs=DENSE_EPOCHS,
                          threads=threads, out_dir=ckpt.parent, progress=False)  # fmt: skip
        train(cfg, log=print)
    return ckpt


def run_net(net: str, out: Path, threads: int) -> list[dict[str, Any]]:
    _, _, _, cycles, node_sparsity = NETS[net]
    ckpt = dense_checkpoint(net, out, threads)
    build_cfg = BuildConfig(target_cycles_per_frame=cycles, verify_samples=8)
    rows = []
    tile_layers: dict[str, float] = {}
    configs = [
        ("tile", {"method": "tile", "speedup": SPEEDUP}),
        ("node", {"method": "node", "sparsity": node_sparsity}),
        ("unstructured", {"method": "unstructured"}),
    ]
    if net == "sfc-w1a1":
        configs.append(("tile, taylor", {"method": "tile", "speedup": SPEEDUP, "criterion": "taylor"}))
    for label, settings in configs:
        if label == "unstructured":
            settings = {**settings, "layer_sparsity": tile_layers}
        cfg = PruneConfig.from_mapping({**settings, **SCHEDULE})
        began = time.perf_counter()
        run = prune(ckpt, cfg, out / net / label.replace(", ", "-"), build_cfg, threads=threads, log=print)
        wall = time.perf_counter() - began
        report = run.result.report
        if label == "tile":
            tile_layers = {r["layer"]: 1.0 - r["kept"] / r["weights"] for r in report["pruned"]["layers"]}
            assert run.unpruned is not None
            rows.append({"net": net, "method": "unpruned", "sparsity": 0.0, "test_acc": report["unpruned"]["test_acc"],
                         **measure(run.unpruned.output_dir)})  # fmt: skip
        assert run.pruned is not None
        rows.append({"net": net, "method": label, "sparsity": round(report["pruned"]["sparsity"], 4),
                     "test_acc": report["pruned"]["test_acc"], "prune_wall_s": round(wall, 1),
                     **measure(run.pruned.output_dir)})  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| network | method | sparsity | test % | cycles/frame measured | estimate | speed-up | "
            "weight bits | Yosys LUT | FF | BRAM18 | FINN est. LUT | RTL vs PyTorch |")  # fmt: skip
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    base = {r["net"]: r for r in rows if r["method"] == "unpruned"}
    for r in rows:
        b = base[r["net"]]
        what = "labels" if r.get("rtl_vs_pytorch_kind") == "label" else "elements"
        exact = (
            f"0 of {r.get('rtl_vs_pytorch_elements')} {what} differ"
            if r["rtl_vs_pytorch_mismatches"] == 0
            else "DIFFERS"
        )
        lines.append(
            f"| {r['net']} | {r['method']} | {r['sparsity']:.3f} | {r['test_acc']:.2f} | {r['measured_ii']:.0f} | "
            f"{r['estimated_ii']} | {b['measured_ii'] / r['measured_ii']:.2f}x | {r['weight_bits']} | {r['luts']} | "
            f"{r['ffs']} | {r['bram18']} | {r['finn_lut_estimate']} | {exact} |"
        )
    return "\n".join(lines)


def plots(rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(exist_ok=True)
    markers = {"unpruned": "o", "tile": "*", "node": "s", "unstructured": "x", "tile, taylor": "P"}
    for key, xlabel, name in (("measured_ii", "cycles per frame (Verilator)", "cycles"),
                              ("luts", "LUTs (Yosys, xc7)", "luts")):  # fmt: skip
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for net in dict.fromkeys(r["net"] for r in rows):
            ours = [r for r in rows if r["net"] == net]
            line = ax.plot([], [])[0]
            for r in ours:
                ax.scatter(r[key], r["test_acc"], marker=markers[r["method"]], color=line.get_color(), s=60)
            ax.plot([r[key] for r in ours if r["method"] in ("unpruned", "tile")],
                    [r["test_acc"] for r in ours if r["method"] in ("unpruned", "tile")],
                    color=line.get_color(), alpha=0.4, label=net)  # fmt: skip
        for method, marker in markers.items():
            ax.scatter([], [], marker=marker, color="gray", label=method)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("MNIST test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(RESULTS / f"pruning_{name}.png", dpi=110, metadata={"Software": None})
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=list(NETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("build/bench/pruning"))
    parser.add_argument("--report", action="store_true", help="Only redraw the plots and table from OUT.")
    again = "Simulate and synthesize the sparse designs in OUT again (after an RTL change)."
    parser.add_argument("--remeasure", action="store_true", help=again)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    results = args.out / "pruning.json"
    if args.remeasure:
        rows = json.loads(results.read_text())["rows"]
        for row in rows:
            where = "tile/unpruned" if row["method"] == "unpruned" else row["method"].replace(", ", "-")
            build_dir = args.out / row["net"] / where / "build"
            design = write_rtl(build_dir).manifest
            if any(layer["module"] == "bnn_mvau_sparse" for layer in design["layers"]):
                row.update(measure(build_dir))
        results.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=1))
    if args.report or args.remeasure:
        rows = json.loads(results.read_text())["rows"]
        plots(rows)
        print(table(rows))
        return
    if results.is_file():
        rows = [r for r in json.loads(results.read_text())["rows"] if r["net"] not in args.only]
    for net in args.only:
        rows += run_net(net, args.out, args.threads)
        order = list(NETS)
        rows.sort(key=lambda r: order.index(r["net"]))
        results.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=1))
    plots(rows)
    print(table(rows))


if __name__ == "__main__":
    main()
