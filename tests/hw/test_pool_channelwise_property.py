"""The global accumulation pool (hw/rtl/bnn_global_acc_pool.sv, FINN's GlobalAccPool) and the channelwise
operation with a constant (hw/rtl/bnn_channelwise.sv, FINN's ElementwiseAdd/Sub/Mul/Max) in Verilator, against
plain numpy references and against FINN's own execution of its nodes.

As in test_layers_property.py: each layer is simulated alone through the real top template, over random shapes,
foldings, bit widths and signedness, without and with back-pressure, and every output element is compared; the
first frames sit at the input type's extremes, so the output width is exercised at its ends. Without
back-pressure every frame must take exactly the layer's expected cycles, and its first output must leave when
PIPELINE_STAGES says. Hand-checked examples pin the word layouts with literal hex words. FINN nodes (made by
FINN's own conversions where that is short) check that `layer_rtl` reads FINN's attributes; a generated two-layer
design is simulated against FINN's execution of the graph and synthesized with Yosys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bnnflow.errors import BnnflowError
from bnnflow.hw.generate import FIFO_LATENCY
from bnnflow.hw.layers import PIPELINE_STAGES, LayerRTL, StreamFormat, layer_rtl, pack_words
from tests.hw.rtl_harness import BIPOLAR, EXTENDED, FAST, PLAIN_INPUTS, Dt, Run, check_all, divisors, out_type, simulate
from tests.hw.test_rtl_params import lint

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

INPUTS = [*PLAIN_INPUTS, Dt(1, signed=True), BIPOLAR]  # every width 1..8, unsigned, signed, bipolar


def extreme_frames(rng: np.random.Generator, dt: Dt, shape: tuple[int, ...]) -> np.ndarray:
    """Frames of `shape` (first axis the frames): the first all at the type's maximum, the second all at its
    minimum, the others uniform."""
    x = dt.sample(rng, shape)
    x[0] = dt.hi
    x[1] = dt.lo
    return x


def check_timing(run: Run, layer: LayerRTL) -> None:
    """Without back-pressure: frames leave exactly expected_cycles apart, and the first one PIPELINE_STAGES + 1
    (the output register) + FIFO_LATENCY cycles after the last input word of the frame entered."""
    out_last, in_first = run.cycles["out_last"], run.cycles["in_first"]
    gaps = np.diff(out_last).tolist()
    assert gaps == [layer.expected_cycles] * (len(out_last) - 1), (gaps, layer.expected_cycles)
    latency = layer.instream.words + PIPELINE_STAGES[layer.module] + 1 + FIFO_LATENCY
    assert out_last[0] - in_first[0] + 1 == latency, run.cycles


# ------------------------------------------------------------------------------------------------ global pool
@dataclass(frozen=True)
class GapCase:
    dt: Dt
    c: int
    pe: int
    pixels: int
    obits_margin: int  # OBITS = the sums' exact width + margin (sign extension into a wider output)
    frames: int
    seed: int


@st.composite
def gap_cases(draw: st.DrawFn) -> GapCase:
    c = draw(st.integers(1, 12))
    return GapCase(draw(st.sampled_from(INPUTS)), c, draw(st.sampled_from(divisors(c))), draw(st.integers(1, 20)),
                   draw(st.sampled_from([0, 0, 1, 5])), draw(st.integers(3, 4)),
                   draw(st.integers(0, 2**32 - 1)))  # fmt: skip


def gap_layer(dt: Dt, c: int, pe: int, pixels: int, odt: Dt) -> LayerRTL:
    params: dict[str, int | str] = {"C": c, "PE": pe, "PIXELS": pixels, "IBITS": dt.bits,
                                    "I_SIGNED": int(dt.signed), "I_BIPOLAR": int(dt.bipolar),
                                    "OBITS": odt.bits}  # fmt: skip
    in_words = pixels * c // pe
    return LayerRTL("L0", "bnn_global_acc_pool", params, StreamFormat(dt.bits, pe, in_words, dt.signed, dt.bipolar),
                    StreamFormat(odt.bits, pe, c // pe, odt.signed, False), in_words)  # fmt: skip


def gap_reference(x: np.ndarray) -> np.ndarray:
    """x (frames, pixels, C): per frame and channel, the sum over the pixels."""
    out = np.zeros((x.shape[0], x.shape[2]), dtype=np.int64)
    for f in range(x.shape[0]):
        for px in range(x.shape[1]):
            out[f] += x[f, px]
    return out


def check_gap(case: GapCase) -> None:
    rng = np.random.default_rng(case.seed)
    x = extreme_frames(rng, case.dt, (case.frames, case.pixels, case.c))
    exact = out_type(case.pixels * case.dt.lo, case.pixels * case.dt.hi)
    odt = Dt(exact.bits + case.obits_margin, exact.signed)
    layer = gap_layer(case.dt, case.c, case.pe, case.pixels, odt)
    runs = simulate(layer, pack_words(case.dt.encode(x).reshape(-1, case.pe), case.dt.bits),
                    seeds=(case.seed % 1000 + 1,))  # fmt: skip
    check_all(runs, gap_reference(x), f"{case}, params {layer.params}")
    check_timing(runs[0], layer)


@FAST
@given(gap_cases())
@example(GapCase(BIPOLAR, 4, 2, 7, 0, 3, 1))  # +-1 sums, a memory of two folds
@example(GapCase(Dt(8, signed=True), 3, 1, 1, 0, 3, 2))  # one pixel: the sum is the input
def test_global_acc_pool_matches_reference(case: GapCase) -> None:
    check_gap(case)


@pytest.mark.slow
@EXTENDED
@given(gap_cases())
def test_global_acc_pool_matches_reference_extended(case: GapCase) -> None:
    check_gap(case)


def test_global_acc_pool_by_hand() -> None:
    # INT3 in, C=4, PE=2, 1 x 2 pixels, INT4 out. Word k of a pixel: x[2k] | x[2k+1] << 3 (3-bit codes).
    # Frame 1: [3,-4,1,0] -> 0x23, 0x01; [2,-1,-2,3] -> 0x3a, 0x1e. Sums [5,-5,-1,3] -> 0xb5, 0x3f.
    # Frame 2: [-4,-4,3,3] twice -> 0x24, 0x1b. Sums [-8,-8,6,6] -> 0x88, 0x66.
    layer = gap_layer(Dt(3, signed=True), 4, 2, 2, Dt(4, signed=True))
    runs = simulate(layer, ["23", "01", "3a", "1e", "24", "1b", "24", "1b"], seeds=(1, 2))
    check_all(runs, np.array([[5, -5, -1, 3], [-8, -8, 6, 6]]), "global acc pool")
    assert all(run.words == ["b5", "3f", "88", "66"] for run in runs)


# ------------------------------------------------------------------------------------------------ channelwise
OPS = ["ADD", "SUB", "RSUB", "MUL", "MAX"]


def channelwise_reference(op: str, x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """x (..., C) op p (C,), element by element."""
    x, p = np.asarray(x, dtype=np.int64), np.asarray(p, dtype=np.int64)
    if op == "ADD":
        return x + p
    if op == "SUB":
        return x - p
    if op == "RSUB":
        return p - x
    if op == "MUL":
        return x * p
    assert op == "MAX"
    return np.maximum(x, p)


@dataclass(frozen=True)
class ChannelwiseCase:
    dt: Dt
    c: int
    pe: int
    pixels: int
    op: str
    pbits: int  # the constants are pbits-bit two's complement values
    broadcast: bool  # one constant for every channel
    obits_margin: int
    frames: int
    seed: int


@st.composite
def channelwise_cases(draw: st.DrawFn) -> ChannelwiseCase:
    c = draw(st.integers(1, 12))
    return ChannelwiseCase(draw(st.sampled_from(INPUTS)), c, draw(st.sampled_from(divisors(c))),
                           draw(st.integers(1, 3)), draw(st.sampled_from(OPS)), draw(st.integers(1, 8)),
                           draw(st.booleans()), draw(st.sampled_from([0, 0, 1, 9])), draw(st.integers(3, 4)),
                           draw(st.integers(0, 2**32 - 1)))  # fmt: skip


def channelwise_layer(dt: Dt, p: np.ndarray, pbits: int, pe: int, pixels: int, op: str, odt: Dt) -> LayerRTL:
    c = len(p)
    cf = c // pe
    rom = np.zeros((cf, pe), dtype=np.int64)
    for f in range(cf):
        for e in range(pe):
            rom[f, e] = int(p[f * pe + e]) & ((1 << pbits) - 1)
    params: dict[str, int | str] = {"C": c, "PE": pe, "IBITS": dt.bits, "I_SIGNED": int(dt.signed),
                                    "I_BIPOLAR": int(dt.bipolar), "PBITS": pbits, "OBITS": odt.bits, "OP": op,
                                    "PARAM_FILE": "L0_params.mem"}  # fmt: skip
    words = pixels * cf
    return LayerRTL("L0", "bnn_channelwise", params, StreamFormat(dt.bits, pe, words, dt.signed, dt.bipolar),
                    StreamFormat(odt.bits, pe, words, odt.signed, False), words,
                    {"L0_params.mem": pack_words(rom, pbits)})  # fmt: skip


def check_channelwise(case: ChannelwiseCase) -> None:
    rng = np.random.default_rng(case.seed)
    plo, phi = -(1 << (case.pbits - 1)), (1 << (case.pbits - 1)) - 1
    # Constants at the ends of their range, at 0 and anywhere between.
    choices = rng.choice(np.array([plo, phi, 0, 0]), size=case.c)
    p = np.where(rng.random(case.c) < 0.5, choices, rng.integers(plo, phi + 1, size=case.c))
    if case.broadcast:
        p = np.full(case.c, p[0])
    x = extreme_frames(rng, case.dt, (case.frames, case.pixels, case.c))
    ends = np.stack([channelwise_reference(case.op, v, p) for v in (case.dt.lo, case.dt.hi)])
    exact = out_type(int(ends.min()), int(ends.max()))
    odt = Dt(exact.bits + case.obits_margin, exact.signed)
    layer = channelwise_layer(case.dt, p, case.pbits, case.pe, case.pixels, case.op, odt)
    runs = simulate(layer, pack_words(case.dt.encode(x).reshape(-1, case.pe), case.dt.bits),
                    seeds=(case.seed % 1000 + 1,))  # fmt: skip
    expected = channelwise_reference(case.op, x, p).reshape(case.frames, -1)
    check_all(runs, expected, f"{case}, constants {p.tolist()}, params {layer.params}")
    check_timing(runs[0], layer)


@FAST
@given(channelwise_cases())
@example(ChannelwiseCase(BIPOLAR, 4, 2, 2, "MUL", 3, False, 0, 3, 3))  # +-1 inputs times constants
@example(ChannelwiseCase(Dt(8), 6, 3, 2, "RSUB", 8, False, 0, 3, 4))  # p - x, widest operands
def test_channelwise_matches_reference(case: ChannelwiseCase) -> None:
    check_channelwise(case)


@pytest.mark.slow
@EXTENDED
@given(channelwise_cases())
@example(ChannelwiseCase(Dt(8, signed=True), 4, 4, 2, "MAX", 1, True, 0, 3, 5))
def test_channelwise_matches_reference_extended(case: ChannelwiseCase) -> None:
    check_channelwise(case)


def test_channelwise_multiply_by_hand() -> None:
    # UINT4 x, C=2, PE=2, p = [3, -4] as INT3: parameter word 3 | 4 << 3 = 0x23. x * p fits INT7 (-60 .. 45):
    # [15,15] -> [45,-60] = 0x2d | 0x44 << 7 = 0x222d; [2,0] -> [6,0] = 0x0006; [0,1] -> [0,-4] = 0x7c << 7.
    layer = channelwise_layer(Dt(4), np.array([3, -4]), 3, 2, 1, "MUL", Dt(7, signed=True))
    assert layer.memories == {"L0_params.mem": ["23"]}
    runs = simulate(layer, ["ff", "02", "10"], seeds=(1, 2))
    check_all(runs, np.array([[45, -60], [6, 0], [0, -4]]), "channelwise MUL")
    assert all(run.words == ["222d", "0006", "3e00"] for run in runs)


def test_channelwise_reverse_subtract_by_hand() -> None:
    # UINT2 x, C=2, PE=1, p = [1, -2] as INT2: parameter words 0x1, 0x2 (one per channel fold). p - x fits INT4:
    # pixel [3,0] -> [-2,-2] = 0xe, 0xe; pixel [0,3] -> [1,-5] = 0x1, 0xb.
    layer = channelwise_layer(Dt(2), np.array([1, -2]), 2, 1, 1, "RSUB", Dt(4, signed=True))
    assert layer.memories == {"L0_params.mem": ["1", "2"]}
    runs = simulate(layer, ["3", "0", "0", "3"], seeds=(1, 2))
    check_all(runs, np.array([[-2, -2], [1, -5]]), "channelwise RSUB")
    assert all(run.words == ["e", "e", "1", "b"] for run in runs)


# ------------------------------------------------------------------------------------------------ parameters
LEGAL: dict[str, dict[str, Any]] = {
    "bnn_global_acc_pool": {"C": 6, "PE": 2, "PIXELS": 9, "IBITS": 4, "OBITS": 8},
    "bnn_channelwise": {"C": 6, "PE": 3, "IBITS": 4, "PBITS": 3, "OBITS": 8, "OP": '"MUL"'},
}
BAD = [
    ("bnn_global_acc_pool", {"PE": 4}, r"bnn_global_acc_pool: PE \(4\) must divide C \(6\)"),
    ("bnn_global_acc_pool", {"OBITS": 3}, r"bnn_global_acc_pool: OBITS \(3\) must be at least IBITS \(4\)"),
    ("bnn_global_acc_pool", {"PIXELS": 0}, r"bnn_global_acc_pool: .*PIXELS \(0\).* must be at least 1"),
    ("bnn_channelwise", {"PE": 4}, r"bnn_channelwise: PE \(4\) must divide C \(6\)"),
    ("bnn_channelwise", {"OP": '"DIV"'}, r"bnn_channelwise: OP \(DIV\) must be ADD, SUB, RSUB, MUL or MAX"),
]


@pytest.mark.parametrize("module", sorted(LEGAL))
def test_legal_parameters_elaborate(verilator: Any, tmp_path: Path, module: str) -> None:
    result = lint(verilator, tmp_path, module, LEGAL[module])
    assert result.returncode == 0 and "USERERROR" not in result.stderr, result.stderr


@pytest.mark.parametrize(("module", "bad", "message"), BAD, ids=[f"{m}-{'-'.join(b)}" for m, b, _ in BAD])
def test_illegal_parameters_are_refused(verilator: Any, tmp_path: Path, module: str, bad: dict[str, Any],
                                        message: str) -> None:  # fmt: skip
    import re

    result = lint(verilator, tmp_path, module, {**LEGAL[module], **bad})
    assert result.returncode != 0 and "USERERROR" in result.stderr
    assert re.search(message, result.stderr), result.stderr


# ------------------------------------------------------------------------------------------------ FINN's nodes
def finn_dt(name: str) -> Dt:
    from qonnx.core.datatype import DataType

    dt = DataType[name]
    bipolar = name == "BIPOLAR"
    return Dt(dt.bitwidth(), signed=bool(dt.signed()) and not bipolar, bipolar=bipolar)


def _one_node_model(node: Any, inputs: dict[str, tuple[list[int], str]], out: tuple[list[int], str]) -> Any:
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    graph = helper.make_graph(
        [node],
        "one_node",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, (shape, _) in inputs.items()],
        [helper.make_tensor_value_info("outp", TensorProto.FLOAT, out[0])],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="bnnflow-test"))
    for name, (_, dt) in [*inputs.items(), ("outp", out)]:
        model.set_tensor_datatype(name, DataType[dt])
    return model


def finn_gap_model(n: int, h: int, w: int, c: int, pe: int, dt: str) -> Any:
    """A one-node graph with FINN's GlobalAccPool, attributes as InferGlobalAccPoolLayer sets them (but PE)."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    node = helper.make_node("GlobalAccPool", ["inp"], ["outp"], domain="finn.custom_op.fpgadataflow",
                            backend="fpgadataflow", NumChannels=c, PE=pe, inputDataType=dt,
                            numInputVectors=[n, h, w], name="GlobalAccPool_0")  # fmt: skip
    odt = getCustomOp(node).get_output_datatype().name
    return _one_node_model(node, {"inp": ([n, h, w, c], dt)}, ([n, 1, 1, c], odt))


def test_global_acc_pool_reads_finn_conversion() -> None:
    """InferGlobalAccPoolLayer on a GlobalAveragePool over NCHW: the node it makes, read by layer_rtl."""
    from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import InferGlobalAccPoolLayer
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["inp"], ["outp"], name="gap")],
        "gap",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, 6, 3, 2])],
        [helper.make_tensor_value_info("outp", TensorProto.FLOAT, [1, 6, 1, 1])],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="bnnflow-test"))
    model.set_tensor_datatype("inp", DataType["INT3"])
    with pytest.warns(UserWarning, match="NCHW"):
        model = model.transform(InferShapes()).transform(InferDataLayouts())
    model = model.transform(InferGlobalAccPoolLayer())
    (node,) = [n for n in model.graph.node if n.op_type == "GlobalAccPool"]
    inst = getCustomOp(node)
    inst.set_nodeattr("PE", 3)
    layer = layer_rtl(model, node)
    assert layer.module == "bnn_global_acc_pool"
    assert layer.params == {"C": 6, "PE": 3, "PIXELS": 6, "IBITS": 3, "I_SIGNED": 1, "I_BIPOLAR": 0, "OBITS": 6}
    assert inst.get_output_datatype() == DataType["INT6"]  # 6 pixels x -4
    assert layer.instream == StreamFormat(3, 3, 12, True, False) and layer.outstream == StreamFormat(6, 3, 2, True,
                                                                                                     False)  # fmt: skip
    assert layer.instream.width == inst.get_instream_width() and layer.outstream.width == inst.get_outstream_width()
    # FINN counts C/PE more cycles (a separate output loop); this RTL emits with the last pixel's words.
    assert layer.expected_cycles == inst.get_exp_cycles() - 2 == 12


@pytest.mark.parametrize(
    ("n", "h", "w", "c", "pe", "dt"),
    [(1, 3, 3, 6, 3, "INT4"), (2, 2, 5, 4, 4, "UINT2"), (1, 3, 2, 3, 1, "BIPOLAR"), (1, 1, 4, 2, 1, "UINT8")],
)
def test_global_acc_pool_matches_finn_execution(n: int, h: int, w: int, c: int, pe: int, dt: str) -> None:
    """FINN's GlobalAccPool node, read by layer_rtl, simulated, against FINN's python execution of that node."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    model = finn_gap_model(n, h, w, c, pe, dt)
    node = model.graph.node[0]
    layer = layer_rtl(model, node)
    inst = getCustomOp(node)
    assert layer.outstream.bits == inst.get_output_datatype().bitwidth()
    assert layer.instream.words == n * h * w * c // pe and layer.outstream.words == n * c // pe
    idt = finn_dt(dt)
    rng = np.random.default_rng(7)
    x = extreme_frames(rng, idt, (3, n, h, w, c))
    finn = np.stack([execute_onnx(model, {"inp": frame.astype(np.float32)})["outp"] for frame in x])
    assert finn.shape == (3, n, 1, 1, c)
    runs = simulate(layer, pack_words(idt.encode(x).reshape(-1, pe), idt.bits), seeds=(3,))
    check_all(runs, finn.astype(np.int64).reshape(3, -1), f"FINN GlobalAccPool, params {layer.params}")
    check_timing(runs[0], layer)


def test_global_acc_pool_refusals() -> None:
    # FINN types the sums of 4 bipolar pixels INT3 (it sizes for 4 x -1), which cannot hold +4.
    model = finn_gap_model(1, 2, 2, 2, 1, "BIPOLAR")
    with pytest.raises(BnnflowError, match=r"'GlobalAccPool_0': output type INT3 does not hold the sums \(-4 to 4\)"):
        layer_rtl(model, model.graph.node[0])
    # FINN's own output type and execution read [N, H, W]: [H, W] would sum over W and C.
    from qonnx.custom_op.registry import getCustomOp

    model = finn_gap_model(1, 2, 2, 2, 1, "INT3")
    getCustomOp(model.graph.node[0]).set_nodeattr("numInputVectors", [4, 2])
    with pytest.raises(BnnflowError, match=r"numInputVectors \[N, H, W\]"):
        layer_rtl(model, model.graph.node[0])


# The ONNX operation, and FINN's node kind it becomes.
ONNX_OPS = {"Add": "ElementwiseAdd", "Sub": "ElementwiseSub", "Mul": "ElementwiseMul", "Max": "ElementwiseMax"}


def finn_elementwise_model(op: str, const: np.ndarray, const_first: bool, shape: list[int], dt: str, pe: int,
                           minimize: bool) -> Any:  # fmt: skip
    """A one-node ONNX graph `x op const` (or `const op x`) turned into FINN's node by FINN's own
    InferElementwiseBinaryOperation; with `minimize`, its output type narrowed as FINN's minimize_bit_width step
    does (else INT32)."""
    from finn.transformation.fpgadataflow.convert_to_hw.elementwise_binary_operation import (
        InferElementwiseBinaryOperation,
    )
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    inputs = ["p", "inp"] if const_first else ["inp", "p"]
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["outp"])],
        "elementwise",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("outp", TensorProto.FLOAT, shape)],
        value_info=[helper.make_tensor_value_info("p", TensorProto.FLOAT, list(const.shape))],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="bnnflow-test"))
    model.set_initializer("p", const.astype(np.float32))
    model.set_tensor_datatype("inp", DataType[dt])
    model = model.transform(InferShapes()).transform(InferElementwiseBinaryOperation())
    model = model.transform(GiveUniqueNodeNames())
    (node,) = model.graph.node
    assert node.op_type == ONNX_OPS[op]
    inst = getCustomOp(node)
    inst.set_nodeattr("PE", pe)
    if minimize:
        inst.minimize_accumulator_width(model)
    return model


ELEMENTWISE_CASES = [
    # op, const (shape), const first, stream shape, input type, PE, minimize, OP expected
    ("Mul", np.array([3, -4, 0, 1, -1, 2]), False, [1, 2, 2, 6], "UINT4", 2, True, "MUL"),
    ("Mul", np.array([-3.0]), True, [1, 3, 1, 4], "BIPOLAR", 4, True, "MUL"),
    ("Add", np.array([[[[5, -7, 0, 1]]]]), False, [1, 2, 3, 4], "INT3", 1, True, "ADD"),
    ("Add", np.array(100.0), True, [1, 2, 2, 3], "INT8", 3, False, "ADD"),  # a scalar; INT32 output
    ("Sub", np.arange(-3, 3), True, [1, 2, 2, 6], "UINT4", 3, True, "RSUB"),
    ("Sub", np.array([[[[2], [2]]]]), False, [1, 1, 2, 1], "INT2", 1, True, "SUB"),  # equal along H: accepted
    ("Max", np.array([0, 3, -2]), False, [1, 2, 2, 3], "INT4", 1, True, "MAX"),
    ("Max", np.array([1, 0]), True, [2, 3, 1, 2], "UINT1", 2, False, "MAX"),
]


@pytest.mark.parametrize(
    ("op", "const", "const_first", "shape", "dt", "pe", "minimize", "rtl_op"),
    ELEMENTWISE_CASES,
    ids=[f"{c[0]}-{c[4]}-{'lhs' if c[2] else 'rhs'}-{'x'.join(map(str, c[1].shape))}" for c in ELEMENTWISE_CASES],
)
def test_elementwise_matches_finn_execution(op: str, const: np.ndarray, const_first: bool, shape: list[int],
                                            dt: str, pe: int, minimize: bool, rtl_op: str) -> None:  # fmt: skip
    """FINN's Elementwise node (from FINN's conversion), read by layer_rtl, simulated, against FINN's python
    execution of that node, every element."""
    from qonnx.core.datatype import DataType
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    model = finn_elementwise_model(op, const, const_first, shape, dt, pe, minimize)
    node = model.graph.node[0]
    inst = getCustomOp(node)
    layer = layer_rtl(model, node)
    c = shape[-1]
    assert layer.module == "bnn_channelwise" and layer.params["OP"] == rtl_op and layer.params["C"] == c
    odt = inst.get_output_datatype()
    assert (odt == DataType["INT32"]) != minimize
    assert layer.outstream.bits == odt.bitwidth() and layer.outstream.signed == odt.signed()
    stream_ix = 0 if model.get_initializer(node.input[0]) is None else 1  # qonnx puts a commutative op's constant last
    assert layer.instream.width == inst.get_instream_width(stream_ix)
    assert layer.outstream.width == inst.get_outstream_width()
    assert layer.expected_cycles == inst.get_exp_cycles() == layer.instream.words
    assert layer.instream.words * pe == int(np.prod(shape))
    idt = finn_dt(dt)
    rng = np.random.default_rng(5)
    x = extreme_frames(rng, idt, (3, *shape))
    finn = np.stack([execute_onnx(model, {"inp": frame.astype(np.float32)})["outp"] for frame in x])
    assert np.array_equal(finn, channelwise_reference(rtl_op, x, np.broadcast_to(const, shape)))
    runs = simulate(layer, pack_words(idt.encode(x).reshape(-1, pe), idt.bits), seeds=(3,))
    check_all(runs, finn.astype(np.int64).reshape(3, -1), f"FINN {node.op_type}, params {layer.params}")
    check_timing(runs[0], layer)


def test_elementwise_refusals() -> None:
    # A constant that varies along H, a float constant, a float stream, and a bipolar output FINN cannot hold.
    cases = [
        (("Add", np.array([[[[1], [2]]]]), False, [1, 1, 2, 1], "INT2", 1, True), "varies along other axes"),
        (("Mul", np.array([0.5, 2.0]), False, [1, 2, 2, 2], "INT2", 1, True), "float inputs or constants"),
        (("Mul", np.array([3.0, 2.0]), False, [1, 2, 2, 2], "FLOAT32", 1, False), "float inputs or constants"),
    ]
    for args, match in cases:
        model = finn_elementwise_model(*args)  # type: ignore[arg-type]
        with pytest.raises(BnnflowError, match=match) as exc:
            layer_rtl(model, model.graph.node[0])
        assert "\n" not in str(exc.value) and model.graph.node[0].name in str(exc.value)


def test_elementwise_refuses_two_streams_and_narrow_types() -> None:
    from onnx import helper

    node = helper.make_node("ElementwiseAdd", ["a", "b"], ["outp"], domain="finn.custom_op.fpgadataflow",
                            backend="fpgadataflow", lhs_shape=[1, 2], rhs_shape=[1, 2], out_shape=[1, 2],
                            lhs_dtype="INT2", rhs_dtype="INT2", out_dtype="INT3", name="Add_0")  # fmt: skip
    model = _one_node_model(node, {"a": ([1, 2], "INT2"), "b": ([1, 2], "INT2")}, ([1, 2], "INT3"))
    with pytest.raises(BnnflowError, match=r"'Add_0'.*one streamed and one constant input"):
        layer_rtl(model, node)
    # A hand-set output type too narrow for x + 3 with x in INT2 (1 .. 4; INT3 stops at 3): refused, not wrapped.
    model.set_initializer("b", np.array([3, 3], dtype=np.float32))
    with pytest.raises(BnnflowError, match=r"'Add_0': output type INT3 does not hold its results \(1 to 4\)"):
        layer_rtl(model, node)


# ------------------------------------------------------------------------------------------------ generated design
def gap_bias_chain(specialized: bool, c: int = 8, bias: bool = True) -> Any:
    """GlobalAccPool (PE=2, INT4 over 3 x 3 pixels: INT8 sums) into an ElementwiseAdd of a per-channel bias with
    PE=4 (unless not `bias`): the generator puts a width converter between them. `specialized`: FINN's HLS
    variants, as a build leaves them (FINN executes only the generic ones in python)."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    suffix, domain = ("_hls", "finn.custom_op.fpgadataflow.hls") if specialized else ("", "finn.custom_op.fpgadataflow")
    out = "outp" if bias else "sums"
    nodes = [helper.make_node(f"GlobalAccPool{suffix}", ["inp"], ["sums"], domain=domain, backend="fpgadataflow",
                              NumChannels=c, PE=2, inputDataType="INT4", numInputVectors=[1, 3, 3],
                              name="GlobalAccPool_0")]  # fmt: skip
    if bias:
        nodes.append(helper.make_node(f"ElementwiseAdd{suffix}", ["sums", "bias"], ["outp"], domain=domain,
                                      backend="fpgadataflow", lhs_shape=[1, 1, 1, c], rhs_shape=[c],
                                      out_shape=[1, 1, 1, c], lhs_dtype="INT8", rhs_dtype="INT8", out_dtype="INT9",
                                      lhs_style="input", rhs_style="const", PE=4, name="ElementwiseAdd_0"))  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "gap_bias",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, 3, 3, c])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 1, 1, c])],
        value_info=[helper.make_tensor_value_info("sums", TensorProto.FLOAT, [1, 1, 1, c]),
                    helper.make_tensor_value_info("bias", TensorProto.FLOAT, [c])] if bias else [],
    )  # fmt: skip
    model = ModelWrapper(qonnx_make_model(graph, producer_name="bnnflow-test"))
    for name, dt in [("inp", "INT4"), ("sums", "INT8")]:
        model.set_tensor_datatype(name, DataType[dt])
    if bias:
        model.set_initializer("bias", np.resize(np.array([-100, 27, 0, 3, -1, 55, 127, -128]), c).astype(np.float32))
        for name, dt in [("bias", "INT8"), ("outp", "INT9")]:
            model.set_tensor_datatype(name, DataType[dt])
    return model


def test_generated_pool_and_bias_match_finn(tmp_path: Path) -> None:
    """generate() on a GlobalAccPool -> ElementwiseAdd graph, simulated as a whole, against FINN's execution."""
    from qonnx.core.onnx_exec import execute_onnx

    from bnnflow.hw.generate import generate
    from bnnflow.sim.harness import SimConfig, run_design

    model = gap_bias_chain(specialized=False)
    design = generate(gap_bias_chain(specialized=True), tmp_path / "rtl")
    assert [layer.module for layer in design.layers] == ["bnn_global_acc_pool", "bnn_dwc", "bnn_channelwise"]
    assert design.layers[0].expected_cycles == 36 and design.layers[2].expected_cycles == 2
    x = extreme_frames(np.random.default_rng(9), Dt(4, signed=True), (4, 1, 3, 3, 8))
    finn = np.stack([execute_onnx(model, {"inp": frame.astype(np.float32)})["outp"] for frame in x])
    words = pack_words(Dt(4, signed=True).encode(x).reshape(-1, 2), 4)
    for backpressure in (False, True):
        cfg = SimConfig(backpressure=backpressure, seed=4, sim_dir=tmp_path / "sim")
        values, cycles, _ = run_design(design, words, design.layers[0].instream, design.layers[-1].outstream, cfg,
                                       tmp_path / "sim")  # fmt: skip
        assert np.array_equal(values, finn.astype(np.int64).reshape(4, -1)), (backpressure, values, finn)
        if not backpressure:
            assert np.diff(cycles["out_last"]).tolist() == [36] * 3


def test_pool_and_bias_synthesize_with_yosys(tmp_path: Path) -> None:
    """read_slang + synth_xilinx on generated designs. The pool alone at C=64: its 32 x 16-bit memory of partial
    sums stays a memory (LUT or block RAM), not 512 flip-flops. Then the pool with the channelwise add."""
    from bnnflow.hw.generate import generate
    from bnnflow.hw.synth import find_yosys, synthesize

    try:
        find_yosys()
    except BnnflowError as exc:
        pytest.skip(f"Yosys unavailable: {exc}")
    pool = synthesize(generate(gap_bias_chain(True, c=64, bias=False), tmp_path / "pool"), tmp_path / "pool-yosys")
    assert pool.lutram_cells + pool.bram18 > 0 and pool.ffs < 32 * 16 // 2, pool.cells
    chain = generate(gap_bias_chain(specialized=True), tmp_path / "rtl")
    assert {layer.module for layer in chain.layers} >= {"bnn_global_acc_pool", "bnn_channelwise"}
    util = synthesize(chain, tmp_path / "yosys")
    assert util.luts > 0 and util.ffs > 0, util.cells
    for log in (tmp_path / "pool-yosys" / "yosys.log", tmp_path / "yosys" / "yosys.log"):
        assert "ERROR" not in log.read_text()
