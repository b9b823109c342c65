"""Batched reference execution: FINN's and qonnx' semantics over many frames at once.

FINN's python execution runs a graph one frame at a time (its hardware layers reshape to a batch of 1), which
makes a 10,000-image reference take minutes. Here:

- the accelerator graph is walked node by node over a whole chunk of frames. Layers whose own FINN execution is
  batch-agnostic (thresholding, padding, pooling, label select) run FINN's `execute_node` unchanged on the batch.
  The matrix-vector unit, whose execution reshapes to one frame, runs the same arithmetic (qonnx' XNOR-popcount
  matmul and multithreshold, as FINN calls them) over the batch; the sliding window generator is a numpy
  window view in Im2Col's order;
- a host graph (standard ONNX and qonnx ops) runs once per chunk with qonnx after qonnx' ChangeBatchSize
  (bnnflow.artifacts.execute_batched).

Every batched result is checked against the per-frame execution on the first frames of the run; on any node kind
without a batched path, or any disagreement, the per-frame execution is used for the whole run instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bnnflow.artifacts import BatchedRun

# FINN layers whose python execution handles any leading batch size as it is.
BATCH_AGNOSTIC = ("Thresholding", "Pool", "FMPadding", "LabelSelect")


def _mvau(inst: Any, node: Any, ctx: dict[str, np.ndarray]) -> None:
    """FINN's MVAU execution (matrixvectoractivation.py: execute_node) without its reshape to one frame."""
    from qonnx.custom_op.general.multithreshold import multithreshold
    from qonnx.custom_op.general.xnorpopcount import xnorpopcountmatmul

    x = ctx[node.input[0]]
    n = x.shape[0]
    normal = inst.get_normal_input_shape()
    x = x.reshape((n, *normal[1:]) if normal[0] == 1 else (n, *normal))
    w = ctx[node.input[1]]
    if inst.get_nodeattr("binaryXnorMode"):
        acc = xnorpopcountmatmul(x, w)
    elif inst.get_nodeattr("inputDataType") == "BIPOLAR" and inst.get_nodeattr("weightDataType") == "BIPOLAR":
        acc = xnorpopcountmatmul((x + 1) / 2, (w + 1) / 2)
    else:
        acc = np.matmul(x, w)
    if inst.get_nodeattr("noActivation") == 0:
        bipolar = inst.get_nodeattr("outputDataType") == "BIPOLAR"
        acc = multithreshold(
            acc,
            ctx[node.input[2]],
            2 if bipolar else 1,
            -1 if bipolar else inst.get_nodeattr("ActVal"),
            channels_last=True,
        )
    ctx[node.output[0]] = np.asarray(acc, dtype=np.float32).reshape(ctx[node.output[0]].shape)


def _vvau(inst: Any, node: Any, ctx: dict[str, np.ndarray]) -> None:
    """FINN's VVAU execution (vectorvectoractivation.py: execute_node) over a batch. Behind a sliding window (as
    in every accelerator graph) FINN takes PE = channels, so its reordering of the input is the identity."""
    from qonnx.custom_op.general.multithreshold import multithreshold

    (kh, kw), channels = inst.get_nodeattr("Kernel"), inst.get_nodeattr("Channels")
    h, w = inst.get_nodeattr("Dim")
    x = ctx[node.input[0]].reshape(-1, h, w, kh * kw * channels)
    acc = np.matmul(x, inst._infer_sparse_weight_tensor(ctx[node.input[1]], kh, kw, channels))
    if inst.get_nodeattr("inputDataType") == "BIPOLAR" and inst.get_nodeattr("weightDataType") == "BIPOLAR":
        acc = (acc + kh * kw) / 2
    if inst.get_nodeattr("noActivation") == 0:
        bipolar = inst.get_nodeattr("outputDataType") == "BIPOLAR"
        acc = multithreshold(acc, ctx[node.input[2]], 2 if bipolar else 1,
                             -1 if bipolar else inst.get_nodeattr("ActVal"), channels_last=True)  # fmt: skip
    ctx[node.output[0]] = np.asarray(acc, dtype=np.float32).reshape(ctx[node.output[0]].shape)


def _swg(inst: Any, node: Any, ctx: dict[str, np.ndarray]) -> None:
    """FINN's sliding window generator as its python execution computes it (qonnx' Im2Col of one NHWC frame:
    windows in (kernel row, kernel column, channel) order), for a batch of frames at once. qonnx' Im2Col itself
    is not used here: over more than one frame it orders the windows otherwise."""
    (kh, kw), (sh, sw), (dh, dw) = (inst.get_nodeattr(a) for a in ("ConvKernelDim", "Stride", "Dilation"))
    x = ctx[node.input[0]]
    windows = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    windows = windows[:, ::sh, ::sw, :, ::dh, ::dw]  # N, OH, OW, C, KH, KW
    out = windows.transpose(0, 1, 2, 4, 5, 3).reshape(*windows.shape[:3], -1)
    ctx[node.output[0]] = np.ascontiguousarray(out, dtype=np.float32).reshape(ctx[node.output[0]].shape)


def batched_kinds(model: Any) -> list[str]:
    """The node kinds of an accelerator graph with no batched path (empty: the graph runs batched)."""
    from bnnflow.dataflow.fold import base_op_type

    known = {"MVAU", "VVAU", "ConvolutionInputGenerator", *BATCH_AGNOSTIC}
    return sorted({base_op_type(n.op_type) for n in model.graph.node} - known)


def _run_accelerator_chunk(model: Any, x: np.ndarray) -> np.ndarray:
    from qonnx.custom_op.registry import getCustomOp

    from bnnflow.dataflow.fold import base_op_type

    n = len(x)
    graph = model.graph
    ctx: dict[str, np.ndarray] = {init.name: model.get_initializer(init.name) for init in graph.initializer}
    iname, oname = graph.input[0].name, graph.output[0].name
    ctx[iname] = np.asarray(x, dtype=np.float32).reshape((n, *model.get_tensor_shape(iname)[1:]))
    for node in graph.node:
        for out in node.output:  # FINN's layers reshape their result to the output's preallocated shape
            ctx[out] = np.zeros((n, *model.get_tensor_shape(out)[1:]), dtype=np.float32)
        inst = getCustomOp(node)
        kind = base_op_type(node.op_type)
        if kind == "MVAU":
            _mvau(inst, node, ctx)
        elif kind == "VVAU":
            _vvau(inst, node, ctx)
        elif kind == "ConvolutionInputGenerator":
            _swg(inst, node, ctx)
        else:
            inst.execute_node(ctx, graph)
    return ctx[oname].reshape(n, -1)


def execute_accelerator_batched(model: Any, inputs: np.ndarray) -> tuple[np.ndarray, str]:
    """FINN's execution of an accelerator graph over all `inputs`; returns the outputs (one flattened row per
    input) and how they were computed ("batched", or "per frame: REASON")."""
    from bnnflow.dataflow.verify import execute_accelerator, generic_layers

    generic = generic_layers(model)
    missing = batched_kinds(generic)
    if missing:
        return execute_accelerator(model, inputs), f"per frame: no batched path for {', '.join(missing)}"
    run = BatchedRun(_run_accelerator_chunk, lambda x: execute_accelerator(model, x))
    out = run(generic, inputs)
    return out, "batched" if run.batched else f"per frame: {run.reason}"
