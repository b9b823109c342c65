"""Verification of a build step: execute the graph (with its host part, once partitioned) on golden inputs
and compare with the PyTorch outputs, every element, knowing a near-tie from a divergence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bnnflow.artifacts import Comparison, compare_outputs, execute


@dataclass(frozen=True)
class StepCheck:
    """How one step's graph compares with PyTorch on the golden inputs."""

    step: str
    comparison: Comparison

    @property
    def ok(self) -> bool:
        return self.comparison.ok

    @property
    def samples(self) -> int:
        return self.comparison.samples

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, **self.comparison.to_dict()}


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


def execute_accelerator(model: Any, inputs: np.ndarray) -> np.ndarray:
    """FINN's python execution of a graph alone (no host part), one flattened output row per input."""
    from finn.core.onnx_exec import execute_onnx

    return execute(generic_layers(model), inputs, execute_onnx)


def execute_graph(model: Any, inputs: np.ndarray) -> np.ndarray:
    """Outputs of the whole network for a step's graph: host part (if any) around FINN's execution."""
    from bnnflow.dataflow.host import HostGraphs

    host = HostGraphs.of_model(model)
    return host.run(inputs, lambda x: execute_accelerator(model, x))


def verify_step(step: str, model: Any, golden: dict[str, np.ndarray], samples: int) -> StepCheck:
    n = min(samples, len(golden["inputs"]))
    actual = execute_graph(model, golden["inputs"][:n])
    ties = golden.get("quantizer_ties")
    return StepCheck(step, compare_outputs(actual, golden["outputs"][:n], quantizer_ties=ties))
