"""The zero-padding layer (hw/rtl/bnn_fmpad.sv, FINN's FMPadding) in Verilator against np.pad and against FINN.

As in test_layers_property.py (whose one-layer simulation and comparison helpers are used here): the layer is
simulated alone through the real top template, over random shapes, foldings, bit widths and (asymmetric) paddings,
each compiled design run without and with back-pressure, and every output element is compared. Without
back-pressure the layer must emit one word per cycle, padding rows included. A hand-checked example pins the word
layout; a FINN FMPadding node built with onnx.helper checks that `layer_rtl` reads FINN's attributes and that the
RTL matches FINN's own execution of that node; the layer also goes through Yosys (read_slang, synth_xilinx).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bnnflow.errors import BnnflowError
from bnnflow.hw.layers import LayerRTL, StreamFormat, layer_rtl, pack_words
from tests.hw.rtl_harness import FAST, Dt, Run, check_all, divisors, simulate

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

# Every example is a Verilator compile: few by default, more under `slow`.
QUICK = settings(FAST, max_examples=5)
EXTENDED = settings(FAST, max_examples=25)
SAMPLE_TYPES = [Dt(b) for b in range(1, 9)] + [Dt(b, signed=True) for b in range(2, 9)]


@dataclass(frozen=True)
class PadCase:
    dt: Dt
    c: int
    simd: int
    h: int
    w: int
    pad: tuple[int, int, int, int]  # top, left, bottom, right (FINN's Padding order)
    frames: int
    seed: int


@st.composite
def pad_cases(draw: st.DrawFn) -> PadCase:
    c = draw(st.integers(1, 6))
    pad = (draw(st.integers(0, 3)), draw(st.integers(0, 3)), draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    return PadCase(draw(st.sampled_from(SAMPLE_TYPES)), c, draw(st.sampled_from(divisors(c))),
                   draw(st.integers(1, 5)), draw(st.integers(1, 5)), pad, draw(st.integers(2, 3)),
                   draw(st.integers(0, 2**32 - 1)))  # fmt: skip


def pad_reference(x: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    """x (frames, H, W, C) zero-padded to (frames, T + H + B, L + W + R, C)."""
    t, left, b, r = pad
    return np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)), mode="constant", constant_values=0)


def pad_layer(dt: Dt, c: int, simd: int, h: int, w: int, pad: tuple[int, int, int, int]) -> LayerRTL:
    t, left, b, r = pad
    in_words, out_words = h * w * c // simd, (t + h + b) * (left + w + r) * c // simd
    params: dict[str, int | str] = {"BITS": dt.bits, "SIMD": simd, "C": c, "H": h, "W": w, "PT": t, "PL": left,
                                    "PB": b, "PR": r}  # fmt: skip
    return LayerRTL("L0", "bnn_fmpad", params, StreamFormat(dt.bits, simd, in_words, dt.signed, False),
                    StreamFormat(dt.bits, simd, out_words, dt.signed, False), out_words)  # fmt: skip


def check_one_word_per_cycle(runs: list[Run], out_words: int) -> None:
    """Without back-pressure, consecutive frames leave exactly `out_words` cycles apart."""
    last = runs[0].cycles["out_last"]
    assert np.diff(last).tolist() == [out_words] * (len(last) - 1), (last, out_words)


def check_pad(case: PadCase) -> None:
    rng = np.random.default_rng(case.seed)
    x = case.dt.sample(rng, (case.frames, case.h, case.w, case.c))
    layer = pad_layer(case.dt, case.c, case.simd, case.h, case.w, case.pad)
    runs = simulate(layer, pack_words(case.dt.encode(x).reshape(-1, case.simd), case.dt.bits),
                    seeds=(case.seed % 1000 + 1,))  # fmt: skip
    check_all(runs, pad_reference(x, case.pad).reshape(case.frames, -1), f"{case}, params {layer.params}")
    check_one_word_per_cycle(runs, layer.outstream.words)


@QUICK
@given(pad_cases())
@example(PadCase(Dt(3, signed=True), 4, 2, 3, 2, (0, 1, 1, 0), 3, 7))  # top 0 / bottom 1, left 1 / right 0
def test_fmpad_matches_np_pad(case: PadCase) -> None:
    check_pad(case)


@pytest.mark.slow
@EXTENDED
@given(pad_cases())
@example(PadCase(Dt(8), 3, 1, 1, 1, (0, 0, 0, 0), 3, 1))  # no padding: the layer is a register stage
@example(PadCase(Dt(1), 2, 2, 1, 4, (2, 0, 0, 3), 2, 2))  # one input row, padding-only rows and columns
def test_fmpad_matches_np_pad_extended(case: PadCase) -> None:
    check_pad(case)


def test_fmpad_by_hand() -> None:
    # UINT4, C=4, SIMD=2, H=1, W=2, Padding (top 1, left 0, bottom 0, right 1): output 2 x 3 pixels, 2 words each.
    # Pixel [1,2,3,4] is the words 0x21, 0x43; row 0 and column 2 are zero words.
    layer = pad_layer(Dt(4), 4, 2, 1, 2, (1, 0, 0, 1))
    runs = simulate(layer, ["21", "43", "65", "87", "a9", "cb", "ed", "0f"], seeds=(1, 2))
    expected = [["00"] * 6 + ["21", "43", "65", "87", "00", "00"], ["00"] * 6 + ["a9", "cb", "ed", "0f", "00", "00"]]
    assert all(run.words == expected[0] + expected[1] for run in runs)
    check_all(runs, [[0] * 12 + [1, 2, 3, 4, 5, 6, 7, 8] + [0] * 4, [0] * 12 + list(range(9, 16)) + [0] * 5], "fmpad")
    check_one_word_per_cycle(runs, 12)


# ------------------------------------------------------------------------------------------------ FINN's node
def finn_pad_model(h: int, w: int, pad: list[int], c: int, simd: int, dt: str, op_type: str = "FMPadding",
                   **attrs: Any) -> Any:  # fmt: skip
    """A one-node graph with FINN's FMPadding (generic, or specialized as `FMPadding_rtl`), attributes as
    InferConvInpGen sets them."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    oh, ow = h + pad[0] + pad[2], w + pad[1] + pad[3]
    domain = "finn.custom_op.fpgadataflow" + (".rtl" if op_type.endswith("_rtl") else "")
    node = helper.make_node(op_type, ["inp"], ["outp"], domain=domain, backend="fpgadataflow", ImgDim=[h, w],
                            Padding=pad, NumChannels=c, SIMD=simd, inputDataType=dt, name="FMPadding_0",
                            **attrs)  # fmt: skip
    graph = helper.make_graph(
        [node],
        "fmpad",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, h, w, c])],
        [helper.make_tensor_value_info("outp", TensorProto.FLOAT, [1, oh, ow, c])],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="bnnflow-test"))
    for name in ("inp", "outp"):
        model.set_tensor_datatype(name, DataType[dt])
    return model


@pytest.mark.parametrize("op_type", ["FMPadding", "FMPadding_rtl"])
@pytest.mark.parametrize("vectors", [1, 3])
def test_layer_reads_finn_attributes(op_type: str, vectors: int) -> None:
    from qonnx.custom_op.registry import getCustomOp

    model = finn_pad_model(3, 5, [0, 2, 1, 0], 6, 3, "INT3", op_type, numInputVectors=vectors)
    node = model.graph.node[0]
    layer = layer_rtl(model, node)
    assert layer.module == "bnn_fmpad" and layer.name == "FMPadding_0"
    assert layer.params == {"BITS": 3, "SIMD": 3, "C": 6, "H": 3, "W": 5, "PT": 0, "PL": 2, "PB": 1, "PR": 0}
    assert layer.instream == StreamFormat(3, 3, vectors * 3 * 5 * 2, True, False)
    assert layer.outstream == StreamFormat(3, 3, vectors * 4 * 7 * 2, True, False)
    inst = getCustomOp(node)
    assert layer.expected_cycles == inst.get_exp_cycles() == layer.outstream.words
    assert layer.instream.width == inst.get_instream_width() and layer.outstream.width == inst.get_outstream_width()
    folded_out = inst.get_folded_output_shape()
    assert layer.outstream.words == vectors * int(np.prod(folded_out[:-1])) and layer.outstream.elems == folded_out[-1]


def test_layer_refuses_what_it_cannot_pad() -> None:
    # BIPOLAR has no 0 (FINN's own get_input_datatype asserts the same); dynamic_mode needs an AXI-lite port.
    for model, match in [(finn_pad_model(2, 2, [1, 1, 1, 1], 2, 1, "BIPOLAR"), "holds 0"),
                         (finn_pad_model(2, 2, [1, 1, 1, 1], 2, 1, "UINT2", "FMPadding_rtl", dynamic_mode=1),
                          "dynamic_mode")]:  # fmt: skip
        with pytest.raises(BnnflowError, match=match):
            layer_rtl(model, model.graph.node[0])


def test_fmpad_matches_finn_execution() -> None:
    """FINN's FMPadding node, read by layer_rtl, simulated, against FINN's python execution of that node."""
    from qonnx.core.onnx_exec import execute_onnx

    h, w, pad, c, simd, dt = 4, 3, [0, 1, 2, 1], 4, 2, Dt(4, signed=True)  # top 0 / bottom 2: asymmetric
    model = finn_pad_model(h, w, pad, c, simd, repr(dt))
    layer = layer_rtl(model, model.graph.node[0])
    rng = np.random.default_rng(11)
    x = dt.sample(rng, (3, h, w, c))
    finn = np.stack([execute_onnx(model, {"inp": frame[None].astype(np.float32)})["outp"][0] for frame in x])
    assert finn.shape == (3, h + 2, w + 2, c) and np.array_equal(finn, pad_reference(x, (0, 1, 2, 1)))
    runs = simulate(layer, pack_words(dt.encode(x).reshape(-1, simd), dt.bits), seeds=(3,))
    check_all(runs, finn.astype(np.int64).reshape(3, -1), f"FINN FMPadding, params {layer.params}")
    check_one_word_per_cycle(runs, layer.expected_cycles)


# ------------------------------------------------------------------------------------------------ Yosys
def test_fmpad_synthesizes_with_yosys(tmp_path: Path) -> None:
    """generate() on the FINN node, then read_slang + synth_xilinx: narrow counters, no arithmetic to speak of."""
    from bnnflow.hw.generate import generate
    from bnnflow.hw.synth import find_yosys, synthesize

    try:
        find_yosys()
    except BnnflowError as exc:
        pytest.skip(f"Yosys unavailable: {exc}")
    model = finn_pad_model(5, 6, [1, 0, 0, 2], 4, 2, "UINT3", "FMPadding_rtl")
    design = generate(model, tmp_path / "rtl")
    assert [layer.module for layer in design.layers] == ["bnn_fmpad"]
    util = synthesize(design, tmp_path / "yosys")
    assert util.luts > 0 and util.ffs > 0, util.cells
    assert "ERROR" not in (tmp_path / "yosys" / "yosys.log").read_text()
