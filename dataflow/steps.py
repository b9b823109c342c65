"""The build steps, each a pure `step_x(model, cfg) -> model` over a qonnx ModelWrapper (FINN's order).

FINN decides what it can map: convert_to_hw runs FINN's conversions for the layers bnnflow's hardware library
implements (matrix-vector units, thresholds, sliding window with padding, max-pool, label select). The leading
nodes that consume float data (the input quantizer of a network trained on float inputs) and whatever follows
the last hardware layer run on the host; any node left between hardware layers is named in the error.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from bnnflow.artifacts import PARENT_PROP
from bnnflow.dataflow.config import BuildConfig
from bnnflow.dataflow.fold import apply_folding
from bnnflow.dataflow.transforms import (
    ConvertAcceleratorPart,
    CoverAccumulatorRange,
    DepthwiseWeightsNotBipolar,
    InferBinaryMVAUKeepBias,
    InferThresholdingBipolar,
    LiftOneDimensional,
    MoveAddPastMaxPool,
    PointwiseDepthwiseAsDense,
    QuantizedAvgPool,
    ScaleInput,
    TruncWithoutUpshift,
    WeightTypesHoldWeights,
)
from bnnflow.errors import BnnflowError

Step = Callable[[Any, BuildConfig], Any]
HW_DOMAIN = "finn.custom_op.fpgadataflow"
QUANT_OPS = frozenset({"Quant", "BipolarQuant", "BinaryQuant", "Trunc", "MultiThreshold"})
BREVITAS_HINT = "export a Brevitas model with brevitas.export.export_qonnx"


SOURCE_NAME = "bnnflow.source_name"


def mark_source_names(model: Any) -> Any:
    """Remember each node's name in the exported file (node metadata), since tidy_up renames nodes."""
    from onnx import StringStringEntryProto

    for node in model.graph.node:
        if not any(p.key == SOURCE_NAME for p in node.metadata_props):
            node.metadata_props.append(StringStringEntryProto(key=SOURCE_NAME, value=node.name))
    return model


def describe_node(node: Any) -> str:
    """'name' (op type T), with the name the node had in the exported model where it was renamed."""
    source = next((p.value for p in node.metadata_props if p.key == SOURCE_NAME), node.name)
    renamed = f", '{source}' in the exported model" if source and source != node.name else ""
    return f"node '{node.name}' (op type {node.op_type}{renamed})"


def check_operators(model: Any) -> None:
    """Every node must be an ONNX or QONNX/FINN operator, and the graph must hold quantizers."""
    import onnx.defs
    from qonnx.custom_op.registry import is_custom_op

    for node in model.graph.node:
        known = is_custom_op(node.domain, node.op_type) if node.domain else onnx.defs.has(node.op_type)
        if not known:
            domain = f", domain {node.domain}" if node.domain else ""
            raise BnnflowError(
                f"node '{node.name}' (op type {node.op_type}{domain}) is neither an ONNX nor a QONNX operator; "
                f"{BREVITAS_HINT}"
            )
    if not any(n.op_type in QUANT_OPS for n in model.graph.node):
        ops = ", ".join(sorted({n.op_type for n in model.graph.node}))
        raise BnnflowError(
            f"the model has no quantizers (ops: {ops}): it is a float ONNX graph, which has no integer hardware "
            f"mapping; {BREVITAS_HINT} (QuantLinear/QuantConv2d and quantized activations)"
        )


def check_groups(model: Any) -> None:
    """FINN maps ordinary convolutions (MVAU) and depthwise ones with one output channel per input channel (VVAU);
    refuse, by node, the grouped convolutions between them."""
    from qonnx.util.basic import get_by_name

    for node in model.get_nodes_by_op_type("Conv"):
        attr = get_by_name(node.attribute, "group")
        groups = attr.i if attr is not None else 1
        wshape = model.get_tensor_shape(node.input[1])  # (C_out, C_in / groups, KH, KW), quantized or not
        if groups == 1 or wshape is None:
            continue
        c_out, c_in = int(wshape[0]), int(wshape[1]) * groups
        if groups != c_in:
            raise BnnflowError(
                f"{describe_node(node)} is a grouped convolution ({groups} groups of {c_in // groups} channels): FINN "
                "maps ordinary (groups=1) and depthwise (groups=channels) convolutions only; use one of those"
            )
        if c_out != c_in:
            raise BnnflowError(
                f"{describe_node(node)} is a depthwise convolution with channel multiplier {c_out // c_in}: FINN's "
                "VVAU makes one output channel per input channel; use out_channels = in_channels and a pointwise "
                "(1x1) convolution after it"
            )


def step_qonnx_to_finn(model: Any, cfg: BuildConfig) -> Any:
    """QONNX cleanup, the declared input type (--input-datatype/--input-scale), then Quant nodes to FINN's
    MultiThreshold and integer weights."""
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from qonnx.util.cleanup import cleanup_model

    check_operators(model)
    model = cleanup_model(mark_source_names(model))
    check_groups(model)
    if cfg.input_datatype is not None:
        model = model.transform(ScaleInput(cfg.input_datatype, cfg.input_scale))
    if not any(n.op_type in QUANT_OPS - {"MultiThreshold"} for n in model.graph.node):
        return model
    model = model.transform(TruncWithoutUpshift()).transform(QuantizedAvgPool())
    model = model.transform(ConvertQONNXtoFINN())
    return model.transform(LiftOneDimensional())


def step_tidy_up(model: Any, cfg: BuildConfig) -> Any:
    """Shape and datatype inference, constant folding, readable unique names."""
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveReadableTensorNames, RemoveStaticGraphInputs
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    for transform in (
        InferShapes(),
        FoldConstants(),
        GiveUniqueNodeNamesRecursive(),
        GiveReadableTensorNames(),
        InferDataTypes(),
        RemoveStaticGraphInputs(),
    ):
        model = model.transform(transform)
    return model


def step_label_select(model: Any, cfg: BuildConfig) -> Any:
    """Append TopK(k=1), so that the accelerator returns the predicted class (FINN's LabelSelect)."""
    import numpy as np
    from qonnx.transformation.insert_topk import InsertTopK

    classes = int(np.prod(model.get_tensor_shape(model.graph.output[0].name)))
    if not cfg.label_select or classes < 2 or model.get_nodes_by_op_type("TopK"):
        return model
    return step_tidy_up(model.transform(InsertTopK(k=1)), cfg)


def step_streamline(model: Any, cfg: BuildConfig) -> Any:
    """Move and collapse scales/biases into thresholds; bipolar matmuls to XNOR-popcount; convs lowered."""
    import finn.transformation.streamline.absorb as absorb
    from finn.transformation.streamline import Streamline
    from finn.transformation.streamline.reorder import MakeMaxPoolNHWC
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
    from qonnx.transformation.general import RemoveUnusedTensors
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

    model = model.transform(absorb.AbsorbScalarBiasIntoMultiThreshold())
    model = model.transform(MoveAddPastMaxPool())
    model = model.transform(Streamline())
    model = _streamline_lightweight(model)
    if model.get_nodes_by_op_type("Conv"):
        model = model.transform(LowerConvsToMatMul())
        check_padding(model)
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbTransposeIntoMultiThreshold())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbConsecutiveTransposes())
    model = model.transform(DepthwiseWeightsNotBipolar()).transform(PointwiseDepthwiseAsDense())
    model = model.transform(ConvertBipolarMatMulToXnorPopcount())
    model = model.transform(Streamline())
    model = model.transform(absorb.AbsorbScalarMulAddIntoTopK())
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(InferDataLayouts())
    model = model.transform(InferDataTypes())
    return model.transform(RemoveUnusedTensors())


def _streamline_lightweight(model: Any) -> Any:
    """FINN's MobileNet streamlining (custom_step_library/mobilenet.py): per-channel scales in front of depthwise
    convolutions move past them into the next thresholds, an average pool goes channels-last, and the flatten and
    scalar scales in front of the classifier move out of the way. Each pass only acts where its pattern is."""
    import finn.transformation.streamline.absorb as absorb
    import finn.transformation.streamline.reorder as reorder
    from finn.transformation.streamline.collapse_repeated import CollapseRepeatedMul
    from qonnx.transformation.change_datalayout import ChangeDataLayoutQuantAvgPool2d
    from qonnx.transformation.double_to_single_float import DoubleToSingleFloat
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.remove import RemoveIdentityOps

    for transform in (
        DoubleToSingleFloat(),
        reorder.MoveMulPastDWConv(),
        absorb.AbsorbMulIntoMultiThreshold(),
        ChangeDataLayoutQuantAvgPool2d(),
        InferDataLayouts(),
        reorder.MoveTransposePastScalarMul(),
        absorb.AbsorbTransposeIntoFlatten(),
        reorder.MoveFlattenPastAffine(),
        reorder.MoveFlattenPastTopK(),
        reorder.MoveScalarMulPastMatMul(),
        CollapseRepeatedMul(),
        RemoveIdentityOps(),
    ):
        model = model.transform(transform).transform(InferDataTypes())
    return model


def step_convert_to_hw(model: Any, cfg: BuildConfig) -> Any:
    """Map streamlined nodes to FINN hardware layers (MVAU, Thresholding, FMPadding + SWG, Pool, LabelSelect);
    float-consuming leading nodes stay on the host."""
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    model = model.transform(ConvertAcceleratorPart(_finn_convert_to_hw))
    for transform in (GiveUniqueNodeNamesRecursive(), InferDataLayouts(), InferShapes(), InferDataTypes()):
        model = model.transform(transform)
    check_mappable(model)
    return model


def _finn_convert_to_hw(model: Any) -> Any:
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.elementwise_binary_operation import (
        InferElementwiseBinaryOperation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import InferGlobalAccPoolLayer
    from finn.transformation.fpgadataflow.convert_to_hw.label_select import InferLabelSelectLayer
    from finn.transformation.fpgadataflow.convert_to_hw.pool import InferPool
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.vector_vector_activation import InferVectorVectorActivation
    from finn.transformation.move_reshape import RemoveCNVtoFCFlatten
    from finn.transformation.streamline.absorb import AbsorbConsecutiveTransposes
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    for transform in (
        InferBinaryMVAUKeepBias(),
        InferVectorVectorActivation(),
        InferQuantizedMatrixVectorActivation(),
        InferLabelSelectLayer(),
        InferThresholdingBipolar(),
        InferPool(),
        InferGlobalAccPoolLayer(),
        InferConvInpGen(),
        InferElementwiseBinaryOperation(_integer_operands),
        RemoveCNVtoFCFlatten(),
        AbsorbConsecutiveTransposes(),
        InferDataLayouts(),
        InferShapes(),
        InferDataTypes(),
    ):
        model = model.transform(transform)
    return model


def _integer_operands(model: Any, node: Any) -> bool:
    """A channelwise Add/Sub/Mul becomes a hardware layer only on integer data with integer constants; a float one
    (the output scale of a classifier) stays on the host."""
    for name in node.input:
        const = model.get_initializer(name)
        if const is not None:
            if not np.array_equal(const, np.round(const)):
                return False
        else:
            dt = model.get_tensor_datatype(name)
            if dt is None or not dt.is_integer():
                return False
    return True


def check_padding(model: Any) -> None:
    """A padded convolution of bipolar (1-bit) data cannot be streamed: PyTorch pads with 0, which is
    neither -1 nor +1."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    for node in model.get_nodes_by_op_type("Im2Col"):
        pads = getCustomOp(node).get_nodeattr("pad_amount")
        if any(pads) and model.get_tensor_datatype(node.input[0]) == DataType["BIPOLAR"]:
            raise BnnflowError(
                f"{describe_node(node)} pads bipolar (1-bit) activations with 0, which a -1/+1 stream cannot "
                "carry; use padding=0 for this convolution, or 2-bit activations in front of it"
            )


_AVG_HINT = (
    "an average pool whose output is not quantized (or not square, or padded); follow it with a quantizer "
    "(QuantIdentity) or use Brevitas' TruncAvgPool2d"
)
# What to change when a node of this op type is left between hardware layers.
_STUCK_HINTS = {
    "Mul": "a scale that streamlining could not absorb: follow every QuantLinear/QuantConv2d (and its "
    "BatchNorm) with a quantized activation (QuantIdentity, QuantReLU or QuantHardTanh)",
    "Add": "a bias or offset that streamlining could not absorb: follow every QuantLinear/QuantConv2d (and its "
    "BatchNorm) with a quantized activation (QuantIdentity, QuantReLU or QuantHardTanh)",
    "MatMul": "its input is not an integer tensor: put a quantized activation in front of this layer",
    "Conv": "its input is not an integer tensor: put a quantized activation in front of this layer",
    "Im2Col": "its input is not an integer tensor: put a quantized activation in front of this layer",
    "MultiThreshold": "a quantizer FINN could not turn into a hardware layer (its input is not integer)",
    "Transpose": "a layout change FINN could not absorb (flatten only once, after the last convolution)",
    "MaxPool": "a max-pool of float data: pool after the activation, or between the convolution and its "
    "BatchNorm (a negative BatchNorm scale cannot move past a pool)",
    "AveragePool": _AVG_HINT,
    "GlobalAveragePool": _AVG_HINT,
    "ReduceMean": _AVG_HINT,
    "Sigmoid": "FINN has no hardware layer for a sigmoid; use a quantized activation (QuantReLU, QuantHardTanh or "
    "QuantIdentity)",
    "Reshape": "a layout change FINN could not absorb (flatten only once, after the last convolution)",
}


def _float_source(model: Any, tensor: str) -> Any | None:
    """The non-hardware node upstream of `tensor` that keeps the data from being integer: of the chain of
    non-hardware nodes back to integer data, the first that is not a scale or offset (those are only stuck
    because of it), else the first."""
    chain: list[Any] = []
    node = model.find_producer(tensor)
    while node is not None and not node.domain.startswith(HW_DOMAIN):
        chain.insert(0, node)
        dynamic = [i for i in node.input if i and model.get_initializer(i) is None]
        if len(dynamic) != 1:
            break
        dt = model.get_tensor_datatype(dynamic[0])
        if dt is not None and dt.is_integer():
            break
        node = model.find_producer(dynamic[0])
    culprits = [n for n in chain if n.op_type not in ("Mul", "Add", "Sub", "Div")]
    return (culprits or chain or [None])[0]


def check_mappable(model: Any) -> None:
    """Every node between the first and the last hardware layer must itself be a hardware layer."""
    nodes = list(model.graph.node)
    hw = [i for i, n in enumerate(nodes) if n.domain.startswith(HW_DOMAIN)]
    if not hw:
        ops = sorted({n.op_type for n in nodes})
        raise BnnflowError(
            f"no node could be mapped to a hardware layer (ops: {', '.join(ops)}); quantize the weights and "
            "activations of the network (QuantLinear/QuantConv2d, QuantIdentity/QuantReLU/QuantHardTanh)"
        )
    check_chain(model)
    for node in nodes:
        if node.domain.startswith(HW_DOMAIN):
            dt = model.get_tensor_datatype(node.input[0])
            if dt is not None and not dt.is_integer():
                source = _float_source(model, node.input[0])
                if source is None:
                    raise BnnflowError(
                        f"hardware layer '{node.name}' ({node.op_type}) takes {dt.name} data: the accelerator "
                        "streams integers; put a quantized activation in front of it"
                    )
                hint = _STUCK_HINTS.get(source.op_type, "FINN has no hardware layer for it; remove it")
                raise BnnflowError(
                    f"{describe_node(source)} is left between hardware layers after FINN's "
                    f"conversion, feeding {dt.name} data to '{node.name}': {hint}"
                )
    stuck = [n for n in nodes[hw[0] : hw[-1] + 1] if not n.domain.startswith(HW_DOMAIN)]
    if stuck:
        node = stuck[0]
        hint = _STUCK_HINTS.get(node.op_type, "FINN has no hardware layer for it; remove it, or move it to the end")
        more = f" ({len(stuck) - 1} more after it)" if len(stuck) > 1 else ""
        raise BnnflowError(
            f"{describe_node(node)} is left between hardware layers after FINN's conversion{more}: {hint}"
        )
    tail = nodes[hw[-1] + 1 :]
    if any(n.op_type in COMPUTE_OPS for n in tail):
        passive = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Mul", "Add", "Sub", "Div")
        node = next((n for n in tail if n.op_type not in passive), tail[0])
        hint = _STUCK_HINTS.get(node.op_type, "FINN has no hardware layer for it; remove it or replace it")
        raise BnnflowError(
            f"{describe_node(node)} has no hardware layer after FINN's conversion, so the layers after it would "
            f"run on the host: {hint}"
        )


# Layers that belong in the accelerator: a host part after it may scale, offset and select, not compute.
COMPUTE_OPS = frozenset({"MatMul", "Gemm", "Conv", "XnorPopcountMatMul", "Im2Col"})


def check_chain(model: Any) -> None:
    """bnnflow's RTL is a chain of layers: refuse, by node, a graph that forks or joins (skip connections)."""
    for node in model.graph.node:
        dynamic = [i for i in node.input if i and model.get_initializer(i) is None]
        if len(dynamic) > 1 and node.op_type == "Mul":
            raise BnnflowError(
                f"{describe_node(node)} multiplies two streams (a squeeze-and-excitation or attention gate): FINN has "
                "no hardware layer for a product of two activations; remove the gate"
            )
        if len(dynamic) > 1 and node.op_type not in ("TopK",):
            raise BnnflowError(
                f"{describe_node(node)} joins {len(dynamic)} branches (a residual or skip connection): bnnflow "
                "generates RTL for chains of layers only; remove the connection"
            )


def step_minimize_bit_width(model: Any, cfg: BuildConfig) -> Any:
    """Tighten weight and accumulator widths, then round and clip thresholds to them."""
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.transformation.infer_datatypes import InferDataTypes

    if cfg.minimize_bit_width:
        model = model.transform(MinimizeWeightBitWidth()).transform(MinimizeAccumulatorWidth())
        model = model.transform(WeightTypesHoldWeights()).transform(CoverAccumulatorRange())
        model = model.transform(InferDataTypes())
    return model.transform(RoundAndClipThresholds()).transform(InferDataTypes())


def step_create_dataflow_partition(model: Any, cfg: BuildConfig) -> Any:
    """Split off the hardware layers as the accelerator graph; the host graph around it (nodes before and
    after the accelerator) travels inside it as metadata, so that a build directory holds no paths."""
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    with tempfile.TemporaryDirectory(prefix="bnnflow-partition-") as tmp:
        parent = model.transform(CreateDataflowPartition(partition_model_dir=tmp))
        sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")
        if len(sdp) != 1:
            raise BnnflowError(f"expected one dataflow partition, found {len(sdp)}; non-hardware nodes split the graph")
        inst = getCustomOp(sdp[0])
        child = ModelWrapper(inst.get_nodeattr("model"))
    inst.set_nodeattr("model", "")  # the accelerator graph is the model this parent travels in
    host = parent.model.SerializeToString(deterministic=True)
    child.set_metadata_prop(PARENT_PROP, base64.b64encode(host).decode("ascii"))
    return child


def step_specialize_layers(model: Any, cfg: BuildConfig) -> Any:
    """Choose the HLS or RTL variant of every layer for the part (binary MVAUs exist only as HLS)."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    model = model.transform(SpecializeLayers(cfg.fpga_part))
    model = model.transform(GiveUniqueNodeNamesRecursive())
    return model.transform(InferShapes()).transform(InferDataTypes())


def step_fold(model: Any, cfg: BuildConfig) -> Any:
    """Set PE/SIMD: from folding_config_file, else SetFolding to the cycle budget, else fully folded."""
    return apply_folding(model, cfg)


def step_estimate(model: Any, cfg: BuildConfig) -> Any:
    """Annotate expected cycles per layer; the reports are written by the build."""
    from finn.transformation.fpgadataflow.annotate_cycles import AnnotateCycles

    return model.transform(AnnotateCycles())


STEPS: dict[str, Step] = {
    "qonnx_to_finn": step_qonnx_to_finn,
    "tidy_up": step_tidy_up,
    "label_select": step_label_select,
    "streamline": step_streamline,
    "convert_to_hw": step_convert_to_hw,
    "minimize_bit_width": step_minimize_bit_width,
    "create_dataflow_partition": step_create_dataflow_partition,
    "specialize_layers": step_specialize_layers,
    "fold": step_fold,
    "estimate": step_estimate,
}


def step_names() -> list[str]:
    return list(STEPS)


def describe() -> str:
    return json.dumps({name: (fn.__doc__ or "").strip() for name, fn in STEPS.items()}, indent=2)
