"""The host side of a partitioned build: the nodes that run before the accelerator (input quantizers of
float-input networks, layout transposes) and after it (per-channel scales and biases of float outputs),
executed with qonnx, around any implementation of the accelerator (FINN's python execution, the RTL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnnflow.artifacts import PARENT_PROP, execute_batched
from bnnflow.errors import BnnflowError

SDP = "StreamingDataflowPartition"


def host_graph(model: Any) -> Any | None:
    """The host graph an accelerator graph carries (see step_create_dataflow_partition), or None."""
    import base64

    from qonnx.core.modelwrapper import ModelWrapper

    encoded = model.get_metadata_prop(PARENT_PROP)
    if not encoded:
        return None
    return ModelWrapper(base64.b64decode(encoded))


def _subgraph(parent: Any, nodes: list[Any], inp: str, out: str) -> Any:
    """A copy of `parent` holding only `nodes`, from tensor `inp` to tensor `out`."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper

    sub = ModelWrapper(parent.model.__deepcopy__())
    sub.graph.ClearField("node")
    sub.graph.node.extend([n.__deepcopy__() for n in nodes])
    for field, name in (("input", inp), ("output", out)):
        # The network's own input and output keep their element type (TopK's indices are int64).
        ends = [v for v in (*parent.graph.input, *parent.graph.output) if v.name == name]
        vi = ends[0] if ends else helper.make_tensor_value_info(name, TensorProto.FLOAT, parent.get_tensor_shape(name))
        for dup in [v for v in sub.graph.value_info if v.name == name]:
            sub.graph.value_info.remove(dup)
        getattr(sub.graph, field).pop()
        getattr(sub.graph, field).append(vi.__deepcopy__())
    return sub


@dataclass
class HostGraphs:
    """What runs on the host before and after the accelerator; None where nothing does."""

    before: Any | None
    after: Any | None

    @classmethod
    def of(cls, parent: Any | None) -> HostGraphs:
        if parent is None:
            return cls(None, None)
        nodes = list(parent.graph.node)
        sdps = [n for n in nodes if n.op_type == SDP]
        if len(sdps) != 1:
            raise BnnflowError(f"the host graph holds {len(sdps)} dataflow partitions; expected one")
        sdp = sdps[0]
        i = nodes.index(sdp)
        gin, gout = parent.graph.input[0].name, parent.graph.output[0].name
        before = _subgraph(parent, nodes[:i], gin, sdp.input[0]) if sdp.input[0] != gin else None
        after = _subgraph(parent, nodes[i + 1 :], sdp.output[0], gout) if sdp.output[0] != gout else None
        return cls(before, after)

    @classmethod
    def of_model(cls, model: Any) -> HostGraphs:
        """The host graphs around an accelerator graph (none before partitioning)."""
        return cls.of(host_graph(model))

    def node_names(self) -> tuple[list[str], list[str]]:
        """'name (op type)' of the host nodes before and after the accelerator."""
        return (
            [f"{n.name} ({n.op_type})" for n in self.before.graph.node] if self.before is not None else [],
            [f"{n.name} ({n.op_type})" for n in self.after.graph.node] if self.after is not None else [],
        )

    def accelerator_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """What the accelerator receives for each input row."""
        if self.before is None:
            return inputs
        shape = self.before.get_tensor_shape(self.before.graph.output[0].name)
        return execute_batched(self.before, inputs).reshape(len(inputs), *shape[1:])

    def outputs(self, accelerator_outputs: np.ndarray) -> np.ndarray:
        """The network's outputs for each row of accelerator outputs."""
        if self.after is None:
            return accelerator_outputs
        return execute_batched(self.after, accelerator_outputs)

    def run(self, inputs: np.ndarray, accelerator: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Host before, `accelerator`, host after: the whole network, one flattened output row per input."""
        out = self.outputs(accelerator(self.accelerator_inputs(inputs)))
        return np.asarray(out).reshape(len(inputs), -1)
