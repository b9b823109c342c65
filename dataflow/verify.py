"""Verification of a build step: execute the graph on golden inputs and compare with the PyTorch outputs."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow.dataflow.steps import PARENT_PROP


@dataclass(frozen=True)
class StepCheck:
    """How one step's graph compares with PyTorch on the golden inputs."""

    step: str
    samples: int
    output: str  # "logits" or "label"
    top1_mismatches: int
    max_abs_diff: float | None  # logits only

    @property
    def ok(self) -> bool:
        return self.top1_mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def top1_agrees(predicted: np.ndarray, golden_logits: np.ndarray) -> np.ndarray:
    """Per sample: is `predicted` one of the maximal golden logits? Binarized nets tie often, so any tied
    maximum counts as agreement."""
    best = golden_logits.max(axis=1, keepdims=True)
    tied = golden_logits == best
    return tied[np.arange(len(predicted)), predicted.astype(np.int64)]


def _runnable(model: Any, tmp: Path) -> Any:
    """The model itself, or, after partitioning, its parent graph pointing at this (child) model."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    parent_path = model.get_metadata_prop(PARENT_PROP)
    if not parent_path:
        return model
    child_path = tmp / "child.onnx"
    model.save(str(child_path))
    parent = ModelWrapper(parent_path)
    for node in parent.get_nodes_by_op_type("StreamingDataflowPartition"):
        getCustomOp(node).set_nodeattr("model", str(child_path))
    return parent


def generic_layers(model: Any) -> Any:
    """A copy whose specialized (_hls/_rtl) layers are replaced by their generic HW layer.

    Specialization picks an implementation, not a function: the generic layer, with the same weights,
    thresholds and folding, has a python execution, while the specialized ones need cppsim or rtlsim.
    """
    from qonnx.core.modelwrapper import ModelWrapper

    copy = ModelWrapper(model.model.__deepcopy__())
    for node in copy.graph.node:
        for suffix in (".hls", ".rtl"):
            if node.domain.endswith(suffix):
                node.domain = node.domain[: -len(suffix)]
                node.op_type = node.op_type[: -len(suffix)]
    return copy


def execute_graph(model: Any, inputs: np.ndarray) -> np.ndarray:
    """Outputs of a FINN/QONNX graph (python execution of every node), one row per input."""
    from finn.core.onnx_exec import execute_onnx

    from bnnflow.training.export import execute

    with tempfile.TemporaryDirectory(prefix="bnnflow-verify-") as tmp:
        runnable = generic_layers(_runnable(generic_layers(model), Path(tmp)))
        return execute(runnable, inputs, execute_onnx)


def verify_step(step: str, model: Any, golden: dict[str, np.ndarray], samples: int) -> StepCheck:
    n = min(samples, len(golden["inputs"]))
    expected = golden["outputs"][:n].reshape(n, -1)
    actual = execute_graph(model, golden["inputs"][:n])
    if actual.shape[1] == expected.shape[1]:
        agree = top1_agrees(actual.argmax(axis=1), expected)
        diff = float(np.abs(actual - expected).max())
        return StepCheck(step, n, "logits", int((~agree).sum()), diff)
    if actual.shape[1] == 1:
        agree = top1_agrees(actual[:, 0], expected)
        return StepCheck(step, n, "label", int((~agree).sum()), None)
    return StepCheck(step, n, f"shape {actual.shape[1:]}", n, None)
