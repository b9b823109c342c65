"""Estimates report: per-layer folding, expected cycles and FINN's resource estimates; design II and FPS."""

from __future__ import annotations

from typing import Any

from bnnflow.dataflow.config import BuildConfig
from bnnflow.dataflow.fold import extract_folding


def estimate(model: Any, cfg: BuildConfig) -> dict[str, Any]:
    """Per-layer and whole-design estimates of a folded dataflow graph (cycles annotated)."""
    from finn.analysis.fpgadataflow.dataflow_performance import dataflow_performance
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation

    cycles = model.analysis(exp_cycles_per_layer)
    sparse = sparse_cycles(model)
    saved = sum(int(cycles[name]) - value for name, value in sparse.items())
    cycles.update(sparse)
    resources = model.analysis(lambda m: res_estimation(m, cfg.fpga_part))
    perf = model.analysis(dataflow_performance)
    folding = extract_folding(model)
    layers = []
    for node in model.graph.node:
        if node.name not in cycles:
            continue
        res = resources.get(node.name, {})
        layers.append(
            {
                "name": node.name,
                "op_type": node.op_type,
                "PE": folding.get(node.name, {}).get("PE"),
                "SIMD": folding.get(node.name, {}).get("SIMD"),
                "cycles": int(cycles[node.name]),
                "sparse_schedule": node.name in sparse,
                "LUT": _num(res.get("LUT")),
                "BRAM_18K": _num(res.get("BRAM_18K")),
                "URAM": _num(res.get("URAM")),
                "DSP": _num(res.get("DSP")),
            }
        )
    ii = max(int(c) for c in cycles.values())
    slowest = max(cycles, key=lambda name: int(cycles[name]))
    latency = int(perf["critical_path_cycles"]) - saved  # as dataflow_latency(model)
    totals = {k: sum(layer[k] or 0 for layer in layers) for k in ("LUT", "BRAM_18K", "URAM", "DSP")}
    return {
        "fpga_part": cfg.fpga_part,
        "clk_ns": cfg.synth_clk_period_ns,
        "layers": layers,
        "total": totals,
        "initiation_interval_cycles": ii,
        "slowest_layer": slowest,
        "latency_cycles": latency,
        "estimated_fps": cfg.clk_hz / ii if ii else None,
        "estimated_latency_us": latency * cfg.synth_clk_period_ns / 1000.0,
    }


def dataflow_latency(model: Any) -> int:
    """FINN's first-frame latency of a folded graph (its critical path of expected cycles), less the cycles
    that tile-sparse layers skip."""
    from finn.analysis.fpgadataflow.dataflow_performance import dataflow_performance
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer

    cycles = model.analysis(exp_cycles_per_layer)
    saved = sum(int(cycles[name]) - value for name, value in sparse_cycles(model).items())
    return int(model.analysis(dataflow_performance)["critical_path_cycles"]) - saved


def sparse_cycles(model: Any) -> dict[str, int]:
    """Cycles per frame of the matrix-vector layers that run a sparse schedule: those whose weights have
    all-zero PE x SIMD tiles (the RTL visits only the others, bnnflow.tiles.vector_cycles, where FINN counts
    every one) and that would otherwise be slower than the design's II with every such schedule. A faster layer
    gains nothing from one and would only spend a schedule ROM and a double input buffer on it."""
    import numpy as np
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from qonnx.custom_op.registry import getCustomOp

    from bnnflow.dataflow.fold import base_op_type
    from bnnflow.tiles import is_sparse, kept_tiles, vector_cycles

    candidates = {}
    for node in model.graph.node:
        if base_op_type(node.op_type) != "MVAU":
            continue
        inst = getCustomOp(node)
        if inst.get_nodeattr("binaryXnorMode"):
            continue  # 0/1 weight codes: no weight is zero
        weights = model.get_initializer(node.input[1])
        kept = kept_tiles(np.asarray(weights).T, inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD"))
        if is_sparse(kept):
            candidates[node.name] = vector_cycles(kept) * int(np.prod(inst.get_nodeattr("numInputVectors")))
    if not candidates:
        return {}
    dense = {name: int(c) for name, c in model.analysis(exp_cycles_per_layer).items()}
    ii = max(candidates.get(name, c) for name, c in dense.items())
    return {name: c for name, c in candidates.items() if dense[name] > ii}


def _num(value: Any) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(float(value), 2)


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table of the estimates, for humans."""
    header = f"{'layer':32s} {'PE':>4s} {'SIMD':>5s} {'cycles':>9s} {'LUT':>8s} {'BRAM18':>7s} {'DSP':>5s}"
    lines = [header, "-" * len(header)]
    for layer in report["layers"]:
        lines.append(
            f"{layer['name']:32s} {_cell(layer['PE']):>4s} {_cell(layer['SIMD']):>5s} {layer['cycles']:>9d} "
            f"{_cell(layer['LUT']):>8s} {_cell(layer['BRAM_18K']):>7s} {_cell(layer['DSP']):>5s}"
        )
    total = report["total"]
    lines.append("-" * len(header))
    lines.append(
        f"{'total':32s} {'':>4s} {'':>5s} {'':>9s} {_cell(total['LUT']):>8s} {_cell(total['BRAM_18K']):>7s} "
        f"{_cell(total['DSP']):>5s}"
    )
    fps = report["estimated_fps"]
    lines.append(
        f"II {report['initiation_interval_cycles']} cycles (slowest: {report['slowest_layer']}), "
        f"latency {report['latency_cycles']} cycles, "
        f"{fps:,.0f} FPS at {1000.0 / report['clk_ns']:.0f} MHz on {report['fpga_part']}"
    )
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)
