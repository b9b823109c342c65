"""bnnflow's own graph passes, as qonnx Transformations (`apply(model) -> (model, changed)`): where the input
data's type is declared, which leading nodes run on the host, and the two places where FINN's conversion to
hardware layers needs help. The build steps compose these with FINN's and qonnx' passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from qonnx.transformation.base import Transformation

from bnnflow.errors import BnnflowError


def input_datatype(name: str) -> Any:
    """The qonnx integer DataType named `name`, or a one-line error."""
    from qonnx.core.datatype import DataType

    try:
        dt = DataType[name]
    except KeyError as exc:
        raise BnnflowError(
            f"unknown input datatype '{name}'; use a qonnx integer type such as UINT8, INT8, BIPOLAR"
        ) from exc
    if not dt.is_integer():
        raise BnnflowError(f"input datatype {name} is not an integer type; the accelerator streams integers")
    return dt


class ScaleInput(Transformation):
    """Declare how the data arrives: the accelerator receives integers of `datatype`, which the network sees
    divided by `scale` (FINN's ToTensor pre-processing: UINT8 pixels, scale 255, for a network trained on
    [0, 1] images). Inserts the Mul in front of the graph; streamlining folds it into the first thresholds."""

    def __init__(self, datatype: str, scale: float) -> None:
        super().__init__()
        self.datatype = input_datatype(datatype)
        if not scale > 0:
            raise BnnflowError(f"input scale must be positive, got {scale}")
        self.scale = float(scale)

    def apply(self, model: Any) -> tuple[Any, bool]:
        from onnx import helper

        iname = model.graph.input[0].name
        model.set_tensor_datatype(iname, self.datatype)
        if self.scale == 1.0:
            return model, False
        scaled = model.make_new_valueinfo_name()
        factor = model.make_new_valueinfo_name()
        for node in model.find_consumers(iname):
            for i, name in enumerate(node.input):
                if name == iname:
                    node.input[i] = scaled
        model.set_initializer(factor, np.asarray(1.0 / self.scale, dtype=np.float32))
        model.graph.node.insert(0, helper.make_node("Mul", [iname, factor], [scaled], name="bnnflow_input_scale"))
        model.set_tensor_shape(scaled, model.get_tensor_shape(iname))
        return model, False


def host_prefix(model: Any) -> list[Any]:
    """The leading chain of nodes that consume non-integer data, up to the first integer tensor: the input
    quantizer of a float-input network (and whatever precedes it). Empty if the input is already integer, or
    if no integer tensor is reached along a simple chain."""
    nodes: list[Any] = []
    tensor = model.graph.input[0].name
    while True:
        dt = model.get_tensor_datatype(tensor)
        if dt is not None and dt.is_integer():
            return nodes
        consumers = model.find_consumers(tensor)
        if len(consumers) != 1:
            return []
        node = consumers[0]
        dynamic = [i for i in node.input if i and model.get_initializer(i) is None]
        if len(dynamic) != 1 or len(node.output) != 1:
            return []
        nodes.append(node)
        tensor = node.output[0]


class ConvertAcceleratorPart(Transformation):
    """Apply `convert` (FINN's conversion to hardware layers) to the graph after its host prefix only, so that
    a float-input quantizer stays a host node (FINN would otherwise make it a float Thresholding layer)."""

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self.convert = convert

    def apply(self, model: Any) -> tuple[Any, bool]:
        from onnx import TensorProto, helper
        from qonnx.core.modelwrapper import ModelWrapper

        prefix = host_prefix(model)
        if not prefix:
            return self.convert(model), False
        cut = prefix[-1].output[0]
        original_input = model.graph.input[0]
        accel = ModelWrapper(model.model.__deepcopy__())
        names = {n.name for n in prefix}
        kept = [n for n in accel.graph.node if n.name not in names]
        accel.graph.ClearField("node")
        accel.graph.node.extend(kept)
        accel.graph.input.pop()
        accel.graph.input.append(helper.make_tensor_value_info(cut, TensorProto.FLOAT, model.get_tensor_shape(cut)))
        for vi in [v for v in accel.graph.value_info if v.name == cut]:
            accel.graph.value_info.remove(vi)
        accel = self.convert(accel)
        # Put the host prefix back in front, with its initializers, shapes and datatypes.
        accel.graph.input.pop()
        accel.graph.input.append(original_input.__deepcopy__())
        for node in reversed(prefix):
            accel.graph.node.insert(0, node.__deepcopy__())
        for node in prefix:
            for name in node.input:
                init = model.get_initializer(name)
                if init is not None and accel.get_initializer(name) is None:
                    accel.set_initializer(name, init)
            for name in [*node.input, *node.output]:
                if name != original_input.name and accel.get_initializer(name) is None:
                    accel.set_tensor_shape(name, model.get_tensor_shape(name))
                accel.set_tensor_datatype(name, model.get_tensor_datatype(name))
        return accel, False


def _xnor_threshold_biases(model: Any) -> dict[str, int]:
    """out_bias of the multi-bit MultiThreshold that each XnorPopcountMatMul feeds, by matmul name."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    biases = {}
    for node in model.get_nodes_by_op_type("XnorPopcountMatMul"):
        consumers = model.find_consumers(node.output[0])
        if len(consumers) != 1 or consumers[0].op_type != "MultiThreshold":
            continue
        mt = consumers[0]
        odt = model.get_tensor_datatype(mt.output[0])
        bias = getCustomOp(mt).get_nodeattr("out_bias")
        if odt.bitwidth() > 1 and odt != DataType["BIPOLAR"] and int(bias) == bias:
            biases[node.name] = int(bias)
    return biases


class InferBinaryMVAUKeepBias(Transformation):
    """FINN's InferBinaryMatrixVectorActivation, keeping the absorbed thresholds' out_bias as ActVal.

    FINN gives a binary MVAU the ActVal of its output type's minimum, which is wrong for narrow-range
    activations ({-1, 0, +1} is INT2 with out_bias -1, not -2).
    """

    def apply(self, model: Any) -> tuple[Any, bool]:
        from finn.transformation.fpgadataflow.convert_to_hw.binary_matrix_vector_activation import (
            InferBinaryMatrixVectorActivation,
        )
        from qonnx.custom_op.registry import getCustomOp

        biases = _xnor_threshold_biases(model)
        model = model.transform(InferBinaryMatrixVectorActivation())
        for node in model.get_nodes_by_op_type("MVAU"):
            if node.name in biases:
                getCustomOp(node).set_nodeattr("ActVal", biases[node.name])
        return model, False


class InferThresholdingBipolar(Transformation):
    """FINN's InferThresholdingLayer, also for standalone bipolar MultiThresholds (out_scale 2, out_bias -1).

    A 1-bit quantizer in front of a MatMul with multi-bit weights is not turned into XNOR-popcount, so its
    MultiThreshold keeps the bipolar scale and bias, which InferThresholdingLayer rejects. A Thresholding layer
    with a BIPOLAR output and ActVal 0 computes the same values (it emits the 0/1 encoding of -1/+1, as
    InferQuantizedMatrixVectorActivation does for bipolar activations).
    """

    def apply(self, model: Any) -> tuple[Any, bool]:
        from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
        from qonnx.core.datatype import DataType
        from qonnx.custom_op.registry import getCustomOp

        bipolar = []
        for node in model.get_nodes_by_op_type("MultiThreshold"):
            inst = getCustomOp(node)
            if (
                model.get_tensor_datatype(node.output[0]) == DataType["BIPOLAR"]
                and inst.get_nodeattr("out_scale") == 2.0
                and inst.get_nodeattr("out_bias") == -1.0
            ):
                inst.set_nodeattr("out_scale", 1.0)
                inst.set_nodeattr("out_bias", 0.0)
                bipolar.append(node.name)
        model = model.transform(InferThresholdingLayer())
        # Any that stayed a MultiThreshold gets its bipolar scale and bias back.
        for node in model.get_nodes_by_op_type("MultiThreshold"):
            if node.name in bipolar:
                getCustomOp(node).set_nodeattr("out_scale", 2.0)
                getCustomOp(node).set_nodeattr("out_bias", -1.0)
        return model, False


class MoveAddPastMaxPool(Transformation):
    """Move a constant scalar or per-channel Add (a convolution's bias) from before a max-pool to after it:
    max(x + b) = max(x) + b for each channel, padded windows included (their pad is -inf). FINN moves such Muls
    (MoveMulPastMaxPool) but not Adds; a bias stuck in front of the pool keeps it from reaching the thresholds
    of a conv -> pool -> activation network."""

    def apply(self, model: Any) -> tuple[Any, bool]:
        for add in model.get_nodes_by_op_type("Add"):
            const = model.get_initializer(add.input[1])
            consumers = model.find_consumers(add.output[0])
            if const is None or model.get_initializer(add.input[0]) is not None or len(consumers) != 1:
                continue
            pool = consumers[0]
            shape = model.get_tensor_shape(add.input[0])
            if pool.op_type != "MaxPool" or shape is None or len(shape) != 4:
                continue
            c = np.asarray(const)
            if c.size != 1 and (c.ndim > 4 or c.shape[-2:] != (1, 1) or c.size != shape[1]):
                continue  # only scalar or (C, 1, 1) / (1, C, 1, 1) constants commute with pooling
            source, pooled = add.input[0], pool.output[0]
            pool.input[0] = source
            middle = model.make_new_valueinfo_name()
            pool.output[0] = middle
            add.input[0] = middle
            add.output[0] = pooled
            model.set_tensor_shape(middle, model.get_tensor_shape(pooled))
            nodes = list(model.graph.node)
            model.graph.node.remove(add)
            model.graph.node.insert(nodes.index(pool), add)
            return model, True
        return model, False
