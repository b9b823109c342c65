"""The sliding-window generator (hw/rtl/bnn_swg.sv) and the pool (hw/rtl/bnn_pool.sv) in Verilator against plain
numpy references of FINN's semantics.

As in test_layers_property.py (tests/hw/rtl_harness.py simulates and compares): each layer is simulated alone over
random shapes, foldings and bit widths, without and with back-pressure, and every output element is compared.
The generator's windows come in im2col order (ky, kx, c) or in FINN's depthwise order (cf, ky, kx, SIMD), one or a
whole window per word, over 2D and 1D (H = 1 or W = 1) images; the pool reads the depthwise order and computes
FINN's MaxPool, AccPool, QuantAvgPool and AvgPool. Streams are laid out here from FINN's documented layouts with
explicit loops. Without back-pressure each must keep FINN's pace: output frames exactly the estimated cycles
apart, the first one as early as PIPELINE_STAGES says. Hand-checked examples pin the word layouts; FINN nodes built
with onnx.helper check that layer_rtl reads FINN's attributes and that the RTL matches FINN's own execution; Yosys
maps the frame buffer to block RAM.
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
from bnnflow.sim.harness import steady_state_ii
from tests.hw.rtl_harness import BIPOLAR, EXTENDED, FAST, PLAIN_INPUTS, Dt, Run, check_all, divisors, out_type, simulate

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]


def stream(dt: Dt, elems: int, words: int) -> StreamFormat:
    return StreamFormat(dt.bits, elems, words, dt.signed, dt.bipolar)


def check_pace(run: Run, layer: LayerRTL, latency: int, what: str) -> None:
    """Without back-pressure: output frames exactly expected_cycles apart (the measured II is the estimate), and
    the first frame's last word out `latency` cycles after its first word is in, plus the layer's pipeline stages,
    its output register and the FIFO of the top level (the test bench counts the first and the last cycle)."""
    last, first = run.cycles["out_last"], run.cycles["in_first"]
    gaps = np.diff(last).tolist()
    assert gaps == [layer.expected_cycles] * (len(last) - 1), f"{what}: frames end at cycles {last}"
    assert steady_state_ii(last) == layer.expected_cycles, what
    expected = latency + PIPELINE_STAGES[layer.module] + 1 + FIFO_LATENCY
    assert last[0] - first[0] + 1 == expected, f"{what}: latency, cycles {run.cycles}"


# ------------------------------------------------------------------------------------------------ sliding window
@dataclass(frozen=True)
class SwgCase:
    dt: Dt
    c: int
    simd: int
    h: int
    w: int
    k: tuple[int, int]
    s: tuple[int, int]
    d: tuple[int, int]
    par: int
    depthwise: int
    frames: int
    seed: int

    @property
    def out_dims(self) -> tuple[int, int]:
        (kh, kw), (sh, sw), (dh, dw) = self.k, self.s, self.d
        return (self.h - dh * (kh - 1) - 1) // sh + 1, (self.w - dw * (kw - 1) - 1) // sw + 1


@st.composite
def swg_cases(draw: st.DrawFn) -> SwgCase:
    shape = draw(st.sampled_from(["2d", "row", "column"]))  # a 1D image: one row (H = 1) or one column (W = 1)
    kh, kw = (1 if shape == "row" else draw(st.integers(1, 3))), (1 if shape == "column" else draw(st.integers(1, 3)))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = 1 if shape == "row" else draw(st.integers(dh * (kh - 1) + 1, 7 if shape == "2d" else 12))
    w = 1 if shape == "column" else draw(st.integers(dw * (kw - 1) + 1, 7 if shape == "2d" else 12))
    c = draw(st.integers(1, 6))
    par, depthwise = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    # FINN's parallel window takes SIMD < C only in depthwise order or for 1 x 1 windows.
    simd = c if par and not depthwise and kh * kw > 1 else draw(st.sampled_from(divisors(c)))
    return SwgCase(draw(st.sampled_from([*PLAIN_INPUTS, BIPOLAR])), c, simd, h, w, (kh, kw),
                   (draw(st.integers(1, 2)), draw(st.integers(1, 2))), (dh, dw), par, depthwise,
                   draw(st.integers(3, 4)), draw(st.integers(0, 2**32 - 1)))  # fmt: skip


def swg_reference(x: np.ndarray, case: SwgCase) -> np.ndarray:
    """x (frames, H, W, C) -> each frame's output elements in stream order. Per output pixel: im2col order
    (ky, kx, c); FINN's depthwise layout (cf, ky, kx, s), c = cf*SIMD + s, in depthwise or parallel mode."""
    (kh, kw), (sh, sw), (dh, dw) = case.k, case.s, case.d
    oh, ow = case.out_dims
    frames = []
    for img in x:
        elems = []
        for oy in range(oh):
            for ox in range(ow):
                win = [[img[oy * sh + ky * dh, ox * sw + kx * dw] for kx in range(kw)] for ky in range(kh)]
                if case.depthwise or case.par:
                    for cf in range(case.c // case.simd):
                        for ky in range(kh):
                            for kx in range(kw):
                                elems += [win[ky][kx][cf * case.simd + s] for s in range(case.simd)]
                else:
                    for ky in range(kh):
                        for kx in range(kw):
                            elems += [win[ky][kx][ch] for ch in range(case.c)]
        frames.append(elems)
    return np.array(frames, dtype=np.int64)


def swg_layer(case: SwgCase) -> LayerRTL:
    (kh, kw), (sh, sw), (dh, dw) = case.k, case.s, case.d
    oh, ow = case.out_dims
    out_elems = case.simd * (kh * kw if case.par else 1)
    in_words, out_words = case.h * case.w * case.c // case.simd, oh * ow * kh * kw * case.c // out_elems
    params: dict[str, int | str] = {
        "BITS": case.dt.bits, "SIMD": case.simd, "C": case.c, "H": case.h, "W": case.w, "KH": kh, "KW": kw,
        "SH": sh, "SW": sw, "DH": dh, "DW": dw, "OH": oh, "OW": ow, "PAR": case.par, "DEPTHWISE": case.depthwise,
    }  # fmt: skip
    return LayerRTL("L0", "bnn_swg", params, stream(case.dt, case.simd, in_words),
                    stream(case.dt, out_elems, out_words), max(in_words, out_words))  # fmt: skip


def check_swg(case: SwgCase) -> None:
    rng = np.random.default_rng(case.seed)
    x = case.dt.sample(rng, (case.frames, case.h, case.w, case.c))
    layer = swg_layer(case)
    runs = simulate(layer, pack_words(case.dt.encode(x).reshape(-1, case.simd), case.dt.bits),
                    seeds=(case.seed % 1000 + 1,))  # fmt: skip
    what = f"{case}, params {layer.params}"
    check_all(runs, swg_reference(x, case), what)
    # A frame is read out once it is all in: its words in, then its words out.
    check_pace(runs[0], layer, layer.instream.words + layer.outstream.words, what)


@FAST
@given(swg_cases())
@example(SwgCase(Dt(3), 4, 2, 1, 9, (1, 3), (1, 2), (1, 2), 0, 1, 3, 5))  # 1D row, depthwise, stride and dilation
def test_swg_matches_reference(case: SwgCase) -> None:
    check_swg(case)


@pytest.mark.slow
@EXTENDED
@given(swg_cases())
@example(SwgCase(Dt(8), 1, 1, 1, 1, (1, 1), (1, 1), (1, 1), 0, 0, 4, 1))  # one word in, one out: no bubble
@example(SwgCase(Dt(2), 2, 1, 3, 3, (3, 3), (1, 1), (1, 1), 1, 1, 3, 2))  # parallel over the whole image
@example(SwgCase(Dt(4, signed=True), 6, 2, 8, 1, (3, 1), (2, 1), (2, 1), 0, 1, 3, 3))  # 1D column, depthwise
def test_swg_matches_reference_extended(case: SwgCase) -> None:
    check_swg(case)


def test_swg_by_hand() -> None:
    # UINT4, C=2, SIMD=1, a 1D row of W=3 pixels (1,2) (3,4) (5,6), window 1 x 2, stride 1: two windows.
    # im2col order: pixel 0's (kx, c) = 1 2 3 4; depthwise: channel 0's window 1 3, then channel 1's 2 4.
    for depthwise, words in [(0, ["1", "2", "3", "4", "3", "4", "5", "6"]),
                             (1, ["1", "3", "2", "4", "3", "5", "4", "6"])]:  # fmt: skip
        layer = swg_layer(SwgCase(Dt(4), 2, 1, 1, 3, (1, 2), (1, 1), (1, 1), 0, depthwise, 1, 0))
        runs = simulate(layer, ["1", "2", "3", "4", "5", "6"], seeds=(1, 2))
        assert all(run.words == words for run in runs), (depthwise, [run.words for run in runs])
    # Parallel and depthwise, C=2, SIMD=1, a 2 x 2 image of pixels (1,2) (3,4) (5,6) (7,8), window 2 x 2: one word
    # per channel, window position k = ky*2 + kx at bits 4k: channel 0 is 7 5 3 1, channel 1 is 8 6 4 2.
    layer = swg_layer(SwgCase(Dt(4), 2, 1, 2, 2, (2, 2), (1, 1), (1, 1), 1, 1, 1, 0))
    runs = simulate(layer, ["1", "2", "3", "4", "5", "6", "7", "8"], seeds=(1, 2))
    assert all(run.words == ["7531", "8642"] for run in runs), [run.words for run in runs]


# ------------------------------------------------------------------------------------------------ pool
@dataclass(frozen=True)
class PoolCase:
    func: str  # FINN's Pool Function
    idt: Dt
    odt: Dt
    shift: int
    c: int
    pe: int
    k2: int
    pixels: int
    frames: int
    seed: int


@st.composite
def pool_cases(draw: st.DrawFn) -> PoolCase:
    func = draw(st.sampled_from(["MaxPool", "AccPool", "QuantAvgPool", "AvgPool"]))
    idt = draw(st.sampled_from([*PLAIN_INPUTS, BIPOLAR] if func in ("MaxPool", "AccPool") else PLAIN_INPUTS))
    k2 = draw(st.sampled_from([1, 2, 4, 8]) if func == "AvgPool" else st.integers(1, 9))
    lo, hi = k2 * idt.lo, k2 * idt.hi
    shift, odt = 0, idt
    if func == "AccPool":  # FINN's output type holds the sum; a wider one is legal
        odt = out_type(lo, hi)
        odt = Dt(odt.bits + draw(st.integers(0, 2)), odt.signed)
    elif func == "AvgPool":  # a mean keeps the input's range
        shift = k2.bit_length() - 1
    elif func == "QuantAvgPool":  # any shift; the output type holds the shifted sums
        shift = draw(st.integers(0, (hi - lo).bit_length()))
        odt = out_type(lo >> shift, hi >> shift)
    c = draw(st.integers(1, 8))
    return PoolCase(func, idt, odt, shift, c, draw(st.sampled_from(divisors(c))), k2, draw(st.integers(1, 4)),
                    draw(st.integers(3, 4)), draw(st.integers(0, 2**32 - 1)))  # fmt: skip


def pool_reference(x: np.ndarray, func: str, shift: int) -> np.ndarray:
    """FINN's Pool on its normal layout: x (frames, pixels, K2, C) -> (frames, pixels * C), the maximum over the
    window, or the sum shifted right by `shift` (a floor division)."""
    if func == "MaxPool":
        return x.max(axis=2).reshape(len(x), -1)
    return np.right_shift(x.sum(axis=2), shift).reshape(len(x), -1)


def depthwise_words(codes: np.ndarray, pe: int, bits: int) -> list[str]:
    """codes (frames, pixels, K2, C) as the depthwise generator streams them: per pixel, per channel fold, the K2
    window positions, PE channels a word."""
    rows = []
    frames, pixels, k2, c = codes.shape
    for f in range(frames):
        for pix in range(pixels):
            for cf in range(c // pe):
                for k in range(k2):
                    rows.append([codes[f, pix, k, cf * pe + p] for p in range(pe)])
    return pack_words(np.array(rows, dtype=np.int64), bits)


def pool_layer(case: PoolCase) -> LayerRTL:
    in_words = case.pixels * case.k2 * case.c // case.pe
    params: dict[str, int | str] = {
        "BITS": case.idt.bits, "OBITS": case.odt.bits, "SIGNED": int(case.idt.signed),
        "BIPOLAR": int(case.idt.bipolar), "PE": case.pe, "K2": case.k2,
        "FUNC": "max" if case.func == "MaxPool" else "sum", "SHIFT": case.shift,
    }  # fmt: skip
    return LayerRTL("L0", "bnn_pool", params, stream(case.idt, case.pe, in_words),
                    stream(case.odt, case.pe, case.pixels * case.c // case.pe), in_words)  # fmt: skip


def check_pool(case: PoolCase) -> None:
    rng = np.random.default_rng(case.seed)
    x = case.idt.sample(rng, (case.frames, case.pixels, case.k2, case.c))
    expected = pool_reference(x, case.func, case.shift)
    assert expected.min() >= case.odt.lo and expected.max() <= case.odt.hi  # the case itself is FINN-legal
    layer = pool_layer(case)
    runs = simulate(layer, depthwise_words(case.idt.encode(x), case.pe, case.idt.bits), seeds=(case.seed % 1000 + 1,))
    what = f"{case}, params {layer.params}"
    check_all(runs, expected, what)
    check_pace(runs[0], layer, layer.instream.words, what)  # a window's result leaves with its last word


@FAST
@given(pool_cases())
@example(PoolCase("QuantAvgPool", Dt(4, signed=True), Dt(4, signed=True), 2, 4, 2, 4, 2, 3, 9))  # negative floor
def test_pool_matches_reference(case: PoolCase) -> None:
    check_pool(case)


@pytest.mark.slow
@EXTENDED
@given(pool_cases())
@example(PoolCase("AccPool", BIPOLAR, Dt(5, signed=True), 0, 6, 3, 9, 2, 3, 4))  # -1/+1 summed
@example(PoolCase("MaxPool", Dt(8, signed=True), Dt(8, signed=True), 0, 8, 1, 9, 3, 3, 5))  # one channel a word
def test_pool_matches_reference_extended(case: PoolCase) -> None:
    check_pool(case)


def test_pool_by_hand() -> None:
    # MaxPool, INT4, C=4, PE=2, K2=2: channel fold 0's window (-1, 3) (2, -8) -> (2, 3), then fold 1's window
    # (7, -2) (-3, -1) -> (7, -1); element 0 in the low nibble.
    case = PoolCase("MaxPool", Dt(4, signed=True), Dt(4, signed=True), 0, 4, 2, 2, 1, 1, 0)
    runs = simulate(pool_layer(case), ["3f", "82", "e7", "fd"], seeds=(1, 2))
    assert all(run.words == ["32", "f7"] for run in runs), [run.words for run in runs]
    check_all(runs, np.array([[2, 3, 7, -1]]), "max-pool")
    # QuantAvgPool, INT4 -> INT4 over K2=2 (FINN's shift 1): (-3 + -2) >> 1 = -3 (a floor), (7 + 7) >> 1 = 7.
    case = PoolCase("QuantAvgPool", Dt(4, signed=True), Dt(4, signed=True), 1, 2, 2, 2, 1, 1, 0)
    runs = simulate(pool_layer(case), ["7d", "7e"], seeds=(1, 2))
    assert all(run.words == ["7d"] for run in runs), [run.words for run in runs]
    # AccPool, INT4 -> INT6 over K2=3, PE=2: (-8, 7) (-8, 7) (-8, 1) -> (-24, 15) = 0b101000 | 0b001111 << 6.
    case = PoolCase("AccPool", Dt(4, signed=True), Dt(6, signed=True), 0, 2, 2, 3, 1, 1, 0)
    runs = simulate(pool_layer(case), ["78", "78", "18"], seeds=(1, 2))
    assert all(run.words == ["3e8"] for run in runs), [run.words for run in runs]
    # AccPool, BIPOLAR -> INT3 over K2=3: codes 1 0 1 are +1 -1 +1 -> 1.
    case = PoolCase("AccPool", BIPOLAR, Dt(3, signed=True), 0, 1, 1, 3, 1, 1, 0)
    runs = simulate(pool_layer(case), ["1", "0", "1"], seeds=(1, 2))
    assert all(run.words == ["1"] for run in runs), [run.words for run in runs]


# ------------------------------------------------------------------------------------------------ FINN's nodes
def finn_swg_pool_model(dt: str, c: int, h: int, w: int, k: tuple[int, int], s: tuple[int, int], pe: int,
                        func: str, odt: str, specialized: bool = False,
                        pool_attrs: dict[str, int] | None = None) -> Any:  # fmt: skip
    """A two-node graph as FINN's InferPool, InferConvInpGen and SetFolding leave it: a depthwise sliding window
    with SIMD = PE feeding a Pool (generic nodes, or specialized as SpecializeLayers makes them)."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    base = "finn.custom_op.fpgadataflow"
    swg = helper.make_node("ConvolutionInputGenerator_rtl" if specialized else "ConvolutionInputGenerator",
                           ["inp"], ["win"], domain=base + (".rtl" if specialized else ""), backend="fpgadataflow",
                           ConvKernelDim=list(k), IFMChannels=c, IFMDim=[h, w], OFMDim=[oh, ow], SIMD=pe,
                           Stride=list(s), Dilation=[1, 1], inputDataType=dt, outputDataType=dt, depthwise=1,
                           is1D=int(h == 1 or w == 1), name="ConvolutionInputGenerator_0")  # fmt: skip
    attrs: dict[str, Any] = {"AccumBits": 0, "Size": 0, **(pool_attrs or {})}
    pool = helper.make_node("Pool_hls" if specialized else "Pool", ["win"], ["outp"],
                            domain=base + (".hls" if specialized else ""), backend="fpgadataflow",
                            InputDataType=dt, OutputDataType=odt, Channels=c, PE=pe, KernelSize=list(k),
                            Function=func, OutImgDims=[oh, ow], BatchSize=1, name="Pool_0", **attrs)  # fmt: skip
    graph = helper.make_graph(
        [swg, pool],
        "swg_pool",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, h, w, c])],
        [helper.make_tensor_value_info("outp", TensorProto.FLOAT, [1, oh, ow, c])],
        value_info=[helper.make_tensor_value_info("win", TensorProto.FLOAT, [1, oh, ow, k[0] * k[1] * c])],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="bnnflow-test"))
    for name in ("inp", "win"):
        model.set_tensor_datatype(name, DataType[dt])
    model.set_tensor_datatype("outp", DataType[odt])
    return model


def test_swg_reads_finn_attributes() -> None:
    from qonnx.custom_op.registry import getCustomOp

    for h, w, k, s in [(6, 5, (2, 3), (2, 1)), (1, 9, (1, 3), (1, 2))]:  # 2D, and a 1D row (FINN's is1D)
        model = finn_swg_pool_model("INT3", 6, h, w, k, s, 2, "MaxPool", "INT3", True)
        node = model.graph.node[0]
        layer = layer_rtl(model, node)
        oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
        assert layer.module == "bnn_swg" and layer.params == {
            "BITS": 3, "SIMD": 2, "C": 6, "H": h, "W": w, "KH": k[0], "KW": k[1], "SH": s[0], "SW": s[1], "DH": 1,
            "DW": 1, "OH": oh, "OW": ow, "PAR": 0, "DEPTHWISE": 1,
        }  # fmt: skip
        inst = getCustomOp(node)
        folded = inst.get_folded_output_shape()
        assert layer.outstream == StreamFormat(3, 2, int(np.prod(folded[:-1])), True, False)
        assert layer.instream.width == inst.get_instream_width() and layer.outstream.width == inst.get_outstream_width()
        assert layer.expected_cycles == max(h * w * 3, oh * ow * k[0] * k[1] * 3)
        # Parallel windows: a whole window per word; SIMD < C only in depthwise order (FINN's own rule).
        inst.set_nodeattr("parallel_window", 1)
        assert layer_rtl(model, node).outstream.elems == 2 * k[0] * k[1]
        inst.set_nodeattr("depthwise", 0)
        with pytest.raises(BnnflowError, match="parallel window needs SIMD = C"):
            layer_rtl(model, node)


@pytest.mark.parametrize(
    ("dt", "k", "func", "odt", "attrs", "params"),
    [
        ("INT4", (2, 2), "MaxPool", "INT4", {}, {"BITS": 4, "OBITS": 4, "SIGNED": 1, "FUNC": "max", "SHIFT": 0}),
        ("BIPOLAR", (3, 3), "MaxPool", "BIPOLAR", {}, {"BITS": 1, "OBITS": 1, "BIPOLAR": 1, "FUNC": "max"}),
        # FINN's shift: bit length of (2^4 - 1) * 9 = 135 is 8, less 5 output bits
        ("UINT4", (3, 3), "QuantAvgPool", "UINT5", {"Size": 3}, {"OBITS": 5, "SIGNED": 0, "FUNC": "sum", "SHIFT": 3}),
        ("INT3", (2, 2), "AccPool", "INT6", {}, {"BITS": 3, "OBITS": 6, "FUNC": "sum", "SHIFT": 0}),
        ("UINT2", (2, 4), "AvgPool", "UINT2", {}, {"K2": 8, "FUNC": "sum", "SHIFT": 3}),
    ],
)
def test_pool_reads_finn_attributes(dt: str, k: tuple[int, int], func: str, odt: str, attrs: dict[str, int],
                                    params: dict[str, int | str]) -> None:  # fmt: skip
    from qonnx.custom_op.registry import getCustomOp

    model = finn_swg_pool_model(dt, 4, 6, 8, k, k, 2, func, odt, True, attrs)
    node = model.graph.node[1]
    layer = layer_rtl(model, node)
    assert layer.module == "bnn_pool" and {**layer.params, **params} == layer.params
    inst = getCustomOp(node)
    assert layer.instream.width == inst.get_instream_width() and layer.outstream.width == inst.get_outstream_width()
    assert layer.expected_cycles == inst.get_exp_cycles() == layer.instream.words
    assert layer.outstream.words * layer.outstream.elems == int(np.prod(inst.get_normal_output_shape()))


@pytest.mark.parametrize(
    ("func", "odt", "attrs", "simd", "match"),
    [
        ("AvgPool", "UINT4", {}, 2, r"AvgPool has RTL only over a power-of-two window \(got 3x3\)"),
        ("QuantAvgPool", "UINT4", {"Size": 3}, 2, r"QuantAvgPool shift Size=3 differs from the 4 FINN executes"),
        ("AccPool", "UINT6", {}, 2, r"AccPool results span \[0, 135\], beyond its output type UINT6"),
        ("MaxPool", "UINT4", {}, 4, r"reads windows 2 channels at a time \(PE\) but its input holds them 4 at a"),
    ],
)
def test_pool_refuses_what_it_cannot_compute(func: str, odt: str, attrs: dict[str, int], simd: int,
                                             match: str) -> None:  # fmt: skip
    from qonnx.custom_op.registry import getCustomOp

    model = finn_swg_pool_model("UINT4", 4, 6, 6, (3, 3), (3, 3), 2, func, odt, True, attrs)
    getCustomOp(model.graph.node[0]).set_nodeattr("SIMD", simd)
    with pytest.raises(BnnflowError, match=match):
        layer_rtl(model, model.graph.node[1])


@pytest.mark.parametrize(
    ("dt", "c", "h", "w", "k", "s", "pe", "func", "odt", "attrs"),
    [
        ("UINT3", 4, 5, 5, (2, 2), (1, 1), 2, "MaxPool", "UINT3", {}),  # overlapping windows, 2 channel folds
        ("INT4", 6, 4, 6, (2, 3), (2, 3), 3, "QuantAvgPool", "INT4", {"Size": 3}),  # 15 * 6 = 90: 7 bits less 4
        ("INT2", 2, 1, 9, (1, 4), (1, 2), 1, "AccPool", "INT4", {}),  # a 1D row
        ("UINT4", 4, 4, 4, (2, 2), (2, 2), 2, "AvgPool", "UINT4", {}),
    ],
)
def test_swg_and_pool_match_finn_execution(dt: str, c: int, h: int, w: int, k: tuple[int, int],
                                           s: tuple[int, int], pe: int, func: str, odt: str,
                                           attrs: dict[str, int]) -> None:  # fmt: skip
    """FINN's two nodes, read by layer_rtl and simulated one after the other (the generator's words are the pool's
    input), against FINN's python execution of the graph."""
    from qonnx.core.datatype import DataType
    from qonnx.core.onnx_exec import execute_onnx

    model = finn_swg_pool_model(dt, c, h, w, k, s, pe, func, odt, pool_attrs=attrs)
    swg, pool = (layer_rtl(model, node) for node in model.graph.node)
    if func == "AvgPool":
        # FINN executes np.mean, whose fractions its own check refuses under the integer type ("Rounding error is
        # too high"); the RTL floors the mean (an integer threshold after it sees no difference).
        model.set_tensor_datatype("outp", DataType["FLOAT32"])
    idt = DataType[dt]
    rng = np.random.default_rng(5)
    x = rng.integers(int(idt.min()), int(idt.max()) + 1, size=(3, h, w, c))
    finn = np.stack([execute_onnx(model, {"inp": img[None].astype(np.float32)})["outp"][0] for img in x])
    if func == "AvgPool":
        assert np.any(finn != np.floor(finn))  # the case has fractions
        finn = np.floor(finn)
    dt_in = Dt(idt.bitwidth(), signed=idt.signed())
    windows = simulate(swg, pack_words(dt_in.encode(x).reshape(-1, pe), dt_in.bits))[0]
    runs = simulate(pool, windows.words, seeds=(3,))
    check_all(runs, finn.astype(np.int64).reshape(3, -1), f"FINN {func}, params {swg.params} {pool.params}")


# ------------------------------------------------------------------------------------------------ Yosys
@pytest.mark.parametrize("par", [0, 1])
def test_frame_buffer_maps_to_block_ram(tmp_path: Path, par: int) -> None:
    """generate() on FINN's nodes, then read_slang + synth_ecp5: the generator's frame buffer is DP16KD block RAM
    (one per window position in parallel mode), not logic."""
    from qonnx.custom_op.registry import getCustomOp

    from bnnflow.hw.generate import generate
    from bnnflow.hw.synth import find_yosys, synthesize

    try:
        find_yosys()
    except BnnflowError as exc:
        pytest.skip(f"Yosys unavailable: {exc}")
    model = finn_swg_pool_model("UINT4", 4, 16, 16, (2, 2), (2, 2), 4, "MaxPool", "UINT4", True)
    swg, pool = model.graph.node
    getCustomOp(swg).set_nodeattr("parallel_window", par)
    model.graph.node.remove(pool)  # the generator alone (a pool's input FIFO would be block RAM too)
    model.graph.output[0].name = swg.output[0]
    design = generate(model, tmp_path / "rtl")
    assert [layer.module for layer in design.layers] == ["bnn_swg"]
    util = synthesize(design, tmp_path / "yosys", family="ecp5")
    # 2 banks of 16 x 16 words of 16 bits: 8 kbit, one DP16KD per copy
    assert util.cells.get("DP16KD", 0) == (4 if par else 1), util.cells
    assert not any(cell.startswith("TRELLIS_DPR") for cell in util.cells), util.cells
