"""Folding (PE/SIMD): apply an explicit FINN folding config or FINN's SetFolding, and check legality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bnnflow.dataflow.config import BuildConfig
from bnnflow.errors import BnnflowError

# For each layer type, the folding attribute and the dimension it must divide.
FOLD_RULES: dict[str, dict[str, str]] = {
    "MVAU": {"PE": "MH", "SIMD": "MW"},
    "Thresholding": {"PE": "NumChannels"},
    "ConvolutionInputGenerator": {"SIMD": "IFMChannels"},
    "LabelSelect": {"PE": "Labels"},
    "Pool": {"PE": "Channels"},
    "StreamingMaxPool": {"PE": "NumChannels"},
    "FMPadding": {"SIMD": "NumChannels"},
    "VVAU": {"PE": "Channels"},
    "GlobalAccPool": {"PE": "NumChannels"},
}
# Attributes written to folding.json (FINN's folding-config format), where a layer has them.
FOLDING_ATTRS = ("PE", "SIMD", "ram_style", "ram_style_thresholds", "mem_mode", "resType", "parallel_window")


def base_op_type(op_type: str) -> str:
    for suffix in ("_hls", "_rtl"):
        if op_type.endswith(suffix):
            return op_type[: -len(suffix)]
    return op_type


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _attr(inst: Any, name: str) -> Any:
    try:
        return inst.get_nodeattr(name)
    except (AttributeError, KeyError, Exception):
        return None


def check_folding(model: Any, overrides: dict[str, dict[str, Any]] | None = None) -> None:
    """Raise a one-line error for the first PE/SIMD that does not divide its dimension."""
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        rules = FOLD_RULES.get(base_op_type(node.op_type))
        if rules is None:
            continue
        inst = getCustomOp(node)
        wanted = (overrides or {}).get(node.name, {})
        for attr, dim_name in rules.items():
            value = wanted.get(attr, _attr(inst, attr))
            dim = _attr(inst, dim_name)
            if value is None or dim is None:
                continue
            if not isinstance(value, int) or value < 1 or dim % value != 0:
                legal = ", ".join(str(d) for d in divisors(int(dim)))
                raise BnnflowError(
                    f"illegal folding for layer '{node.name}' ({node.op_type}): {attr}={value} does not "
                    f"divide {dim_name}={dim}; legal {attr} values: {legal}"
                )


def read_folding_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise BnnflowError(f"folding config {path} not found") from exc
    except json.JSONDecodeError as exc:
        raise BnnflowError(f"folding config {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise BnnflowError(f"folding config {path} must map layer names to {{attribute: value}} objects")
    return data


def apply_folding(model: Any, cfg: BuildConfig) -> Any:
    from finn.transformation.fpgadataflow.set_folding import SetFolding
    from finn.transformation.general import ApplyConfig
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive

    model = model.transform(GiveUniqueNodeNamesRecursive())
    if cfg.folding_config_file is not None:
        folding = read_folding_file(cfg.folding_config_file)
        names = {n.name for n in model.graph.node}
        unknown = sorted(set(folding) - names - {"Defaults"})
        if unknown:
            raise BnnflowError(
                f"folding config {cfg.folding_config_file} names unknown layer(s) {', '.join(unknown)}; "
                f"the layers are: {', '.join(sorted(names))}"
            )
        check_folding(model, folding)
        model = model.transform(ApplyConfig(folding))
    elif (cycles := cfg.resolved_cycles_per_frame()) is not None:
        model = model.transform(
            SetFolding(
                cycles,
                mvau_wwidth_max=cfg.mvau_wwidth_max,
                two_pass_relaxation=cfg.folding_two_pass_relaxation,
            )
        )
    check_folding(model)
    return model


def extract_folding(model: Any) -> dict[str, Any]:
    """The folding in use, in FINN's folding-config format (replayable with folding_config_file)."""
    from qonnx.custom_op.registry import getCustomOp

    out: dict[str, Any] = {"Defaults": {}}
    for node in model.graph.node:
        if not node.domain.startswith("finn.custom_op.fpgadataflow"):
            continue
        inst = getCustomOp(node)
        attrs = {}
        for name in FOLDING_ATTRS:
            value = _attr(inst, name)
            if value is not None and value != "":
                attrs[name] = value
        out[node.name] = attrs
    return out
