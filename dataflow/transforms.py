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


class TruncWithoutUpshift(Transformation):
    """An average pool's Trunc (QONNX v2) whose output bit width exceeds its input bit width shifts the window sum
    left and scales it down by as much (Brevitas' TruncAvgPool2d with an 8-bit output over a 6-bit sum): the value
    is the sum times the input scale either way. FINN's AvgPoolAndTruncToQuantAvgPool assumes a right shift and
    drops the left one, which scales the result wrongly. Rewrite such a Trunc to the identical value without the
    shift (output bits = input bits, output scale = input scale), which FINN then converts exactly."""

    def apply(self, model: Any) -> tuple[Any, bool]:
        for node in model.get_nodes_by_op_type("Trunc"):
            if len(node.input) != 6:  # v1 Trunc has no output scale: it only ever shifts right
                continue
            producer = model.find_producer(node.input[0])
            if producer is None or producer.op_type != "AveragePool":
                continue
            params = [model.get_initializer(name) for name in node.input[1:]]
            if any(p is None for p in params):
                continue
            scale, _, in_bits, out_scale, out_bits = (np.asarray(p, dtype=np.float64) for p in params)
            if in_bits.size != 1 or out_bits.size != 1 or float(out_bits) <= float(in_bits):
                continue
            if not np.allclose(out_scale * 2.0 ** (float(out_bits) - float(in_bits)), scale, rtol=1e-6):
                continue  # not a pure shift: leave it to FINN's own checks
            model.set_initializer(node.input[4], np.asarray(params[0], dtype=np.float32))
            model.set_initializer(node.input[5], np.asarray(params[2], dtype=np.float32))
            return model, True
        return model, False


def true_accumulator_range(model: Any, node: Any) -> tuple[int, int] | None:
    """The range of values a matrix- or vector-vector unit's accumulator really takes: a popcount of matches in
    [0, fan-in] for binary data and weights, else the exact range of W^T x for its integer weights."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    weights = model.get_initializer(node.input[1])
    if weights is None:
        return None
    idt = DataType[inst.get_nodeattr("inputDataType")]
    wdt = DataType[inst.get_nodeattr("weightDataType")]
    if node.op_type.startswith("VVAU"):
        kh, kw = inst.get_nodeattr("Kernel")
        weights = np.asarray(weights).reshape(-1, kh * kw).T  # (K, C)
        xnor = idt == DataType["BIPOLAR"] and wdt == DataType["BIPOLAR"]
    else:
        xnor = bool(inst.get_nodeattr("binaryXnorMode"))
    if xnor:
        return 0, int(weights.shape[0])
    if idt == DataType["BIPOLAR"]:
        xlo, xhi = -1, 1
    else:
        xlo, xhi = int(idt.min()), int(idt.max())
    w = np.rint(np.asarray(weights, dtype=np.float64)).astype(np.int64)
    lo = np.minimum(w * xlo, w * xhi).sum(axis=0)
    hi = np.maximum(w * xlo, w * xhi).sum(axis=0)
    return int(lo.min()), int(hi.max())


class CoverAccumulatorRange(Transformation):
    """Widen a unit's accDataType to the range its accumulator really takes. FINN's MinimizeAccumulatorWidth sizes
    an XNOR unit's accumulator for +-1 weights times 0/1 inputs ([-64, 63] for 64 inputs), while the popcount it
    thresholds runs over [0, 64]; RoundAndClipThresholds then clips a threshold of 70 (never fires) to 64 (fires on
    a full match). Clipping to a type that covers the true range keeps every out-of-range threshold out of range:
    above the maximum it still never fires, at or below the minimum it still always fires."""

    def apply(self, model: Any) -> tuple[Any, bool]:
        from qonnx.core.datatype import DataType
        from qonnx.custom_op.registry import getCustomOp

        for node in model.graph.node:
            if not (node.op_type.startswith("MVAU") or node.op_type.startswith("VVAU")):
                continue
            inst = getCustomOp(node)
            if inst.get_nodeattr("noActivation"):
                continue
            rng = true_accumulator_range(model, node)
            if rng is None:
                continue
            lo, hi = rng
            adt = DataType[inst.get_nodeattr("accDataType")]
            if adt.min() <= lo and hi <= adt.max():
                continue
            lo, hi = min(lo, int(adt.min())), max(hi, int(adt.max()))
            wider = DataType.get_smallest_possible(lo) if lo < 0 else DataType.get_smallest_possible(hi)
            if lo < 0 and wider.max() < hi:
                wider = DataType.get_smallest_possible(-hi - 1)
            inst.set_nodeattr("accDataType", wider.name)
        return model, False


class LiftOneDimensional(Transformation):
    """1D convolutions and pools become H x 1 images ([N, C, L] -> [N, C, L, 1]), as FINN builds them
    (qonnx's Change3DTo4DTensors). torch's exporter writes a 1D max-pool's `dilations` too, which that pass does not
    extend ("Attribute dilations has incorrect size"); it is extended here first. A node the pass cannot lift is
    named, since it would otherwise leave the graph half 3D."""

    LIFTABLE = frozenset(
        {"Add", "Mul", "Div", "BatchNormalization", "MultiThreshold", "Conv", "Transpose", "LogSoftmax", "ArgMax",
         "TopK", "MatMul", "Flatten", "Reshape", "MaxPool", "Upsample", "Resize"}
    )  # fmt: skip

    def apply(self, model: Any) -> tuple[Any, bool]:
        from qonnx.transformation.change_3d_tensors_to_4d import Change3DTo4DTensors
        from qonnx.util.basic import get_by_name

        shape = model.get_tensor_shape(model.graph.input[0].name)
        if shape is None or len(shape) != 3:
            return model, False
        for node in model.graph.node:
            const = model.get_initializer(node.input[1]) if node.op_type == "Sub" else None
            if const is not None:  # x - c as x + (-c), which the lifting pass knows (the `2x - 1` of bnn_pynq)
                model.set_initializer(node.input[1], -np.asarray(const))
                node.op_type = "Add"
            if node.op_type not in self.LIFTABLE:
                from bnnflow.dataflow.steps import describe_node

                raise BnnflowError(
                    f"{describe_node(node)} has no 1D mapping: bnnflow maps 1D networks as H x 1 images, which "
                    "covers Conv1d, MaxPool1d, BatchNorm1d, quantized activations and Linear layers"
                )
            if node.op_type == "MaxPool":
                dilations = get_by_name(node.attribute, "dilations")
                if dilations is not None and len(dilations.ints) == 1:
                    dilations.ints.append(1)
        return model.transform(Change3DTo4DTensors()), False


def _spatial_window(model: Any, node: Any) -> tuple[int, int] | None:
    """(kernel, stride) of a square average pool without padding, or None where FINN's QuantAvgPool2d cannot
    express it. A global pool (GlobalAveragePool, ReduceMean over H and W) is a pool over the whole map."""
    from qonnx.util.basic import get_by_name

    shape = model.get_tensor_shape(node.input[0])
    if shape is None or len(shape) != 4:
        return None
    if node.op_type == "AveragePool":
        kernel = get_by_name(node.attribute, "kernel_shape")
        strides = get_by_name(node.attribute, "strides")
        pads = get_by_name(node.attribute, "pads")
        ceil = get_by_name(node.attribute, "ceil_mode")
        k = list(kernel.ints) if kernel is not None else []
        s = list(strides.ints) if strides is not None else [1, 1]
        if len(k) != 2 or k[0] != k[1] or s[0] != s[1] or (pads is not None and any(pads.ints)):
            return None
        if ceil is not None and ceil.i:
            return None
        return int(k[0]), int(s[0])
    if node.op_type == "ReduceMean":
        axes_attr = get_by_name(node.attribute, "axes")
        axes = list(axes_attr.ints) if axes_attr is not None else None
        if axes is None and len(node.input) > 1 and model.get_initializer(node.input[1]) is not None:
            axes = [int(a) for a in np.asarray(model.get_initializer(node.input[1])).ravel()]
        keep = get_by_name(node.attribute, "keepdims")
        if axes is None or sorted(a % 4 for a in axes) != [2, 3] or (keep is not None and keep.i == 0):
            return None
    elif node.op_type != "GlobalAveragePool":
        return None
    if shape[2] != shape[3]:
        return None
    return int(shape[2]), 1


def _any_window(model: Any, node: Any) -> tuple[list[int], list[int]] | None:
    """(kernel, strides) of an unpadded AveragePool of any rank (1D or 2D, square or not), else None."""
    from qonnx.util.basic import get_by_name

    shape = model.get_tensor_shape(node.input[0])
    if node.op_type != "AveragePool" or shape is None or len(shape) not in (3, 4):
        return None
    kernel = get_by_name(node.attribute, "kernel_shape")
    strides = get_by_name(node.attribute, "strides")
    pads = get_by_name(node.attribute, "pads")
    ceil = get_by_name(node.attribute, "ceil_mode")
    if kernel is None or (pads is not None and any(pads.ints)) or (ceil is not None and ceil.i):
        return None
    k = [int(v) for v in kernel.ints]
    return k, [int(v) for v in strides.ints] if strides is not None else [1] * len(k)


def _requantized(model: Any, node: Any) -> bool:
    """`node` is a quantizer, or a ReLU feeding one (QuantReLU exports as Relu -> Quant)."""
    if node.op_type == "Relu":
        consumers = model.find_consumers(node.output[0])
        return len(consumers) == 1 and consumers[0].op_type == "Quant"
    return bool(node.op_type == "Quant")


class QuantizedAvgPool(Transformation):
    """A float average pool followed by a quantizer (nn.AvgPool2d or nn.AdaptiveAvgPool2d(1), then QuantIdentity)
    becomes FINN's integer pool: the window sum of the integers its input quantizer emits (QuantAvgPool2d with no
    shift), times scale / k^2, which streamlining moves into the next quantizer's thresholds. That quantizer rounds
    the exact mean, as PyTorch's does. Brevitas' TruncAvgPool2d needs none of this (FINN converts it itself)."""

    def apply(self, model: Any) -> tuple[Any, bool]:
        from onnx import helper
        from qonnx.util.basic import get_by_name

        for node in model.graph.node:
            if node.op_type not in ("AveragePool", "GlobalAveragePool", "ReduceMean"):
                continue
            window = _spatial_window(model, node)
            general = _any_window(model, node) if window is None else None
            producer = model.find_producer(node.input[0])
            consumers = model.find_consumers(node.output[0])
            if window is None and general is None:
                continue
            if producer is None or producer.op_type != "Quant" or len(consumers) != 1:
                continue
            if not _requantized(model, consumers[0]):
                continue
            scale, zero, bits = (model.get_initializer(name) for name in producer.input[1:4])
            if scale is None or zero is None or bits is None or np.size(scale) != 1 or np.any(zero != 0):
                continue
            signed = get_by_name(producer.attribute, "signed")
            if general is not None:
                return self._as_depthwise_sum(model, node, general, float(np.asarray(scale).item())), True
            assert window is not None
            k, stride = window
            ibits = int(np.asarray(bits).item())
            obits = int((2**ibits - 1) * k * k).bit_length() + (1 if signed is not None and signed.i else 0)
            s = float(np.asarray(scale).item())
            ints, sums = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
            div_c, mul_c = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
            model.set_initializer(div_c, np.asarray(s, dtype=np.float32))
            model.set_initializer(mul_c, np.asarray(s / (k * k), dtype=np.float32))
            new = [
                helper.make_node("Div", [node.input[0], div_c], [ints], name=f"{node.name}_to_int"),
                helper.make_node(
                    "QuantAvgPool2d",
                    [ints],
                    [sums],
                    domain="qonnx.custom_op.general",
                    stride=stride,
                    kernel=k,
                    ibits=ibits,
                    obits=obits,
                    signed=int(bool(signed and signed.i)),
                    data_layout="NCHW",
                    name=f"{node.name}_sum",
                ),
                helper.make_node("Mul", [sums, mul_c], [node.output[0]], name=f"{node.name}_mean"),
            ]
            index = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            for offset, n in enumerate(new):
                model.graph.node.insert(index + offset, n)
            from qonnx.transformation.infer_shapes import InferShapes

            return model.transform(InferShapes()), True
        return model, False

    @staticmethod
    def _as_depthwise_sum(model: Any, node: Any, window: tuple[list[int], list[int]], scale: float) -> Any:
        """A window FINN's square QuantAvgPool2d cannot express (1D, or k x l): its sum is a depthwise convolution
        with all-ones kernels, which FINN maps to a VVAU; the 1/size goes into the next thresholds as above."""
        from onnx import helper
        from qonnx.core.datatype import DataType
        from qonnx.transformation.infer_shapes import InferShapes

        kernel, strides = window
        channels = int(model.get_tensor_shape(node.input[0])[1])
        ints, sums = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
        div_c, ones, mul_c = (model.make_new_valueinfo_name() for _ in range(3))
        model.set_initializer(div_c, np.asarray(scale, dtype=np.float32))
        model.set_initializer(ones, np.ones((channels, 1, *kernel), dtype=np.float32))
        model.set_tensor_datatype(ones, DataType["INT2"])
        model.set_initializer(mul_c, np.asarray(scale / float(np.prod(kernel)), dtype=np.float32))
        new = [
            helper.make_node("Div", [node.input[0], div_c], [ints], name=f"{node.name}_to_int"),
            helper.make_node(
                "Conv",
                [ints, ones],
                [sums],
                group=channels,
                kernel_shape=kernel,
                strides=strides,
                pads=[0] * (2 * len(kernel)),
                dilations=[1] * len(kernel),
                name=f"{node.name}_sum",
            ),
            helper.make_node("Mul", [sums, mul_c], [node.output[0]], name=f"{node.name}_mean"),
        ]
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        for offset, n in enumerate(new):
            model.graph.node.insert(index + offset, n)
        return model.transform(InferShapes())


class DepthwiseWeightsNotBipolar(Transformation):
    """A lowered depthwise convolution's weight matrix holds its kernels on a block diagonal, zeros elsewhere, so
    it is not BIPOLAR even where every kernel weight is +-1; qonnx would otherwise turn it into an XNOR-popcount
    product, which counts the zeros as -1. Annotated INT2 ({-1, 0, 1}), it becomes a VVAU that computes the sum."""

    def apply(self, model: Any) -> tuple[Any, bool]:
        from qonnx.core.datatype import DataType

        for node in model.get_nodes_by_op_type("MatMul"):
            sparsity = model.get_tensor_sparsity(node.input[1])
            if sparsity and "dw" in sparsity and model.get_tensor_datatype(node.input[1]) == DataType["BIPOLAR"]:
                model.set_tensor_datatype(node.input[1], DataType["INT2"])
        return model, False


class PointwiseDepthwiseAsDense(Transformation):
    """A 1x1 depthwise convolution (a one-channel convolution is one too, for qonnx) has no sliding window in front,
    and FINN's SetFolding requires one in front of every VVAU. Its lowered weight matrix is diagonal: computed as an
    ordinary matrix-vector unit, it gives the same sums."""

    def apply(self, model: Any) -> tuple[Any, bool]:
        for node in model.get_nodes_by_op_type("MatMul"):
            sparsity = model.get_tensor_sparsity(node.input[1])
            if not sparsity or "dw" not in sparsity or list(sparsity["dw"]["kernel_shape"]) != [1, 1]:
                continue
            for annotation in model.graph.quantization_annotation:
                if annotation.tensor_name == node.input[1]:
                    kept = [e for e in annotation.quant_parameter_tensor_names if e.key != "tensor_sparsity"]
                    del annotation.quant_parameter_tensor_names[:]
                    annotation.quant_parameter_tensor_names.extend(kept)
        return model, False


class WeightTypesHoldWeights(Transformation):
    """Every weight of a matrix- or vector-vector unit must be a value of its weightDataType. FINN's
    MinimizeWeightBitWidth annotates weights in {-1, 0} as BIPOLAR (the smallest type that holds -1), which has no
    0: an accelerator that stores them as bipolar codes turns every 0 into -1. Such a type is widened to the
    smallest signed integer type that holds the weights."""

    def apply(self, model: Any) -> tuple[Any, bool]:
        from qonnx.core.datatype import DataType
        from qonnx.custom_op.registry import getCustomOp

        for node in model.graph.node:
            if not (node.op_type.startswith("MVAU") or node.op_type.startswith("VVAU")):
                continue
            inst = getCustomOp(node)
            weights = model.get_initializer(node.input[1])
            if weights is None or inst.get_nodeattr("binaryXnorMode"):
                continue  # XNOR mode stores 0/1 codes by design
            wdt = DataType[inst.get_nodeattr("weightDataType")]
            values = np.unique(np.asarray(weights))
            if all(wdt.allowed(v) for v in values):
                continue
            lo, hi = int(values.min()), int(values.max())
            bits = 2
            while not (-(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))):
                bits += 1
            inst.set_nodeattr("weightDataType", f"INT{bits}")
            model.set_tensor_datatype(node.input[1], DataType[f"INT{bits}"])
        return model, False
