"""The build steps, each a pure `step_x(model, cfg) -> model` over a qonnx ModelWrapper (FINN's order).

Only the transformations for the layers bnnflow's hardware library implements are applied in convert_to_hw
(matrix-vector units, thresholds, sliding window, max-pool, label select); anything else left between
hardware layers is reported by name instead of being mapped to a layer no backend here can build.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bnnflow.dataflow.config import BuildConfig
from bnnflow.dataflow.fold import apply_folding
from bnnflow.errors import BnnflowError

Step = Callable[[Any, BuildConfig], Any]
HW_DOMAIN = "finn.custom_op.fpgadataflow"
PARENT_PROP = "bnnflow.dataflow_parent"
# ONNX/QONNX ops that streamlining and convert_to_hw know how to turn into (or fold into) hardware layers.
SUPPORTED_OPS = frozenset(
    {
        "Quant", "BipolarQuant", "BinaryQuant", "Trunc", "MultiThreshold", "MatMul", "Gemm", "Conv",
        "BatchNormalization", "Mul", "Add", "Sub", "Div", "Sqrt", "Neg", "MaxPool", "Reshape", "Flatten",
        "Transpose", "TopK", "Identity", "Dropout", "Constant", "Sign", "Shape", "Gather", "Unsqueeze",
        "Concat", "Squeeze", "Cast",
    }
)  # fmt: skip


def check_supported_ops(model: Any) -> None:
    """Reject, by node name and op type, any op the flow has no mapping for (before FINN sees it)."""
    for node in model.graph.node:
        if node.domain.startswith(HW_DOMAIN) or node.op_type in SUPPORTED_OPS:
            continue
        raise BnnflowError(
            f"node '{node.name}' (op type {node.op_type}) cannot be mapped to a hardware layer; "
            "bnnflow maps quantized Linear/Conv + BatchNorm + QuantIdentity, MaxPool and top-1 selection"
        )


def step_qonnx_to_finn(model: Any, cfg: BuildConfig) -> Any:
    """QONNX cleanup, then Quant/BipolarQuant nodes to FINN's MultiThreshold and integer weights."""
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from qonnx.util.cleanup import cleanup_model

    check_supported_ops(model)
    quant_ops = {"Quant", "BipolarQuant", "BinaryQuant", "Trunc"}
    if not any(n.op_type in quant_ops for n in model.graph.node):
        return model
    return cleanup_model(model).transform(ConvertQONNXtoFINN())


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
    from qonnx.transformation.insert_topk import InsertTopK

    if not cfg.label_select or model.get_nodes_by_op_type("TopK"):
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
    model = model.transform(Streamline())
    if model.get_nodes_by_op_type("Conv"):
        model = model.transform(LowerConvsToMatMul())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbTransposeIntoMultiThreshold())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbConsecutiveTransposes())
    model = model.transform(ConvertBipolarMatMulToXnorPopcount())
    model = model.transform(Streamline())
    model = model.transform(absorb.AbsorbScalarMulAddIntoTopK())
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(InferDataLayouts())
    model = model.transform(InferDataTypes())
    return model.transform(RemoveUnusedTensors())


def step_convert_to_hw(model: Any, cfg: BuildConfig) -> Any:
    """Map streamlined nodes to FINN hardware layers (MVAU, Thresholding, SWG, Pool, LabelSelect)."""
    from finn.transformation.fpgadataflow.convert_to_hw.binary_matrix_vector_activation import (
        InferBinaryMatrixVectorActivation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.label_select import InferLabelSelectLayer
    from finn.transformation.fpgadataflow.convert_to_hw.pool import InferPool
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation,
    )
    from finn.transformation.move_reshape import RemoveCNVtoFCFlatten
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    from finn.transformation.streamline.absorb import AbsorbConsecutiveTransposes
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    # FINN gives a binary MVAU the ActVal of its output type's minimum, which is wrong for narrow-range
    # activations ({-1, 0, +1} is INT2 with out_bias -1, not -2): keep the absorbed thresholds' out_bias.
    xnor_bias = _xnor_threshold_biases(model)
    model = model.transform(InferBinaryMatrixVectorActivation())
    for node in model.get_nodes_by_op_type("MVAU"):
        if node.name in xnor_bias:
            getCustomOp(node).set_nodeattr("ActVal", xnor_bias[node.name])
    model = model.transform(InferQuantizedMatrixVectorActivation())
    model = model.transform(InferLabelSelectLayer())
    model = _infer_thresholding(model)
    for transform in (
        InferPool(),
        InferConvInpGen(),
        RemoveCNVtoFCFlatten(),
        AbsorbConsecutiveTransposes(),
        GiveUniqueNodeNamesRecursive(),
        InferDataLayouts(),
        InferShapes(),
        InferDataTypes(),
    ):
        model = model.transform(transform)
    check_mappable(model)
    return model


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


def _infer_thresholding(model: Any) -> Any:
    """InferThresholdingLayer, also for standalone bipolar MultiThresholds (out_scale 2, out_bias -1).

    A 1-bit input quantizer in front of a MatMul with multi-bit weights is not turned into XNOR-popcount,
    so its MultiThreshold keeps the bipolar scale and bias, which InferThresholdingLayer rejects. A
    Thresholding layer with a BIPOLAR output and ActVal 0 computes the same values (it emits the 0/1
    encoding of -1/+1, as InferQuantizedMatrixVectorActivation does for bipolar activations).
    """
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
    # Any that stayed a MultiThreshold (non-integer input) gets its bipolar scale and bias back.
    for node in model.get_nodes_by_op_type("MultiThreshold"):
        if node.name in bipolar:
            getCustomOp(node).set_nodeattr("out_scale", 2.0)
            getCustomOp(node).set_nodeattr("out_bias", -1.0)
    return model


def check_mappable(model: Any) -> None:
    """Every node between the first and the last hardware layer must itself be a hardware layer."""
    nodes = list(model.graph.node)
    hw = [i for i, n in enumerate(nodes) if n.domain.startswith(HW_DOMAIN)]
    if not hw:
        ops = sorted({n.op_type for n in nodes})
        raise BnnflowError(
            f"no node could be mapped to a hardware layer (ops: {', '.join(ops)}); "
            "is this a FINN-streamlinable Brevitas model?"
        )
    stuck = [n for n in nodes[hw[0] : hw[-1] + 1] if not n.domain.startswith(HW_DOMAIN)]
    if stuck:
        names = ", ".join(f"'{n.name}' (op type {n.op_type})" for n in stuck)
        raise BnnflowError(
            f"node(s) {names} between hardware layers cannot be mapped to a hardware layer; "
            "streamlining could not absorb them (is each Linear/Conv followed by BatchNorm, QuantIdentity?)"
        )


def step_minimize_bit_width(model: Any, cfg: BuildConfig) -> Any:
    """Tighten weight and accumulator widths, then round and clip thresholds to them."""
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.transformation.infer_datatypes import InferDataTypes

    if cfg.minimize_bit_width:
        model = model.transform(MinimizeWeightBitWidth()).transform(MinimizeAccumulatorWidth())
        model = model.transform(InferDataTypes())
    return model.transform(RoundAndClipThresholds()).transform(InferDataTypes())


def step_create_dataflow_partition(model: Any, cfg: BuildConfig) -> Any:
    """Split the hardware layers into their own graph; the rest stays in intermediate/dataflow_parent.onnx."""
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    partitions = Path(cfg.output_dir) / "intermediate" / "partitions"
    parent = model.transform(CreateDataflowPartition(partition_model_dir=str(partitions)))
    sdp = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    if len(sdp) != 1:
        raise BnnflowError(f"expected one dataflow partition, found {len(sdp)}; non-hardware nodes split the graph")
    child = ModelWrapper(getCustomOp(sdp[0]).get_nodeattr("model"))
    parent_path = Path(cfg.output_dir) / "intermediate" / "dataflow_parent.onnx"
    parent.save(str(parent_path))
    child.set_metadata_prop(PARENT_PROP, str(parent_path.resolve()))
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
