"""Every hand-written RTL layer (hw/rtl/*.sv) in Verilator against a plain numpy reference.

Each layer is simulated alone, as a one-layer chain rendered through the real top template (which puts a FIFO
after it), over random shapes, foldings and bit widths, each compiled design run without and with (seeded)
back-pressure. Memory files are laid out here from the RTL's documented word layout, with explicit loops, not
with the library's reshapes, so a layout slip in either place shows. Every output element is compared.
A hand-checked tiny example per layer pins the layouts with literal hex words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bnnflow.hw.layers import LayerRTL, StreamFormat, pack_words, signed_bits
from tests.hw.rtl_harness import (
    BIPOLAR,
    EXTENDED,
    FAST,
    MVAU_INPUTS,
    MVAU_WEIGHTS,
    PLAIN_INPUTS,
    Dt,
    check_all,
    divisors,
    label_reference,
    mvau_reference,
    out_type,
    pick_thresholds,
    simulate,
    threshold_reference,
)

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]


# ------------------------------------------------------------------------------------------------ layers
@dataclass(frozen=True)
class MvauCase:
    mw: int
    mh: int
    pe: int
    simd: int
    xnor: bool
    idt: Dt
    wdt: Dt
    nthres: int
    actval: int
    acc_margin: int  # ACCBITS = bits of the range + margin (the library uses 1)
    frames: int
    seed: int


def mvau_layer(w: np.ndarray, thr: np.ndarray | None, case: MvauCase) -> tuple[LayerRTL, Dt]:
    """The bnn_mvau instance for weights w (MH, MW) (values, or 0/1 codes in XNOR mode) and thresholds."""
    mw, mh, pe, simd = case.mw, case.mh, case.pe, case.simd
    sf, nf = mw // simd, mh // pe
    wbits = 1 if case.xnor else case.wdt.bits
    wcodes = w if case.xnor else case.wdt.encode(w)
    blocks = np.zeros((nf * sf, pe * simd), dtype=np.int64)
    for n in range(nf):
        for s_ in range(sf):
            for p in range(pe):
                for s in range(simd):
                    blocks[n * sf + s_, p * simd + s] = wcodes[n * pe + p, s_ * simd + s]
    bound = mw * (1 if case.xnor else case.idt.magnitude * case.wdt.magnitude)
    lo, hi = -bound, bound
    nthres = 0 if thr is None else thr.shape[1]
    if thr is not None:
        lo, hi = min(lo, int(thr.min()), case.actval), max(hi, int(thr.max()), case.actval + nthres)
    accbits = signed_bits(lo, hi) + case.acc_margin
    memories = {"L0_weights.mem": pack_words(blocks, wbits)}
    if thr is not None:
        tblocks = np.zeros((nf, pe * nthres), dtype=np.int64)
        for n in range(nf):
            for p in range(pe):
                for t in range(nthres):
                    tblocks[n, p * nthres + t] = int(thr[n * pe + p, t]) & ((1 << accbits) - 1)
        memories["L0_thresholds.mem"] = pack_words(tblocks, accbits)
        odt = out_type(case.actval, case.actval + nthres)
    else:
        odt = Dt(mw.bit_length()) if case.xnor else Dt(signed_bits(-bound, bound), signed=True)
    idt = Dt(1) if case.xnor else case.idt
    params: dict[str, int | str] = {
        "MW": mw, "MH": mh, "PE": pe, "SIMD": simd, "IBITS": idt.bits, "WBITS": wbits, "ACCBITS": accbits,
        "OBITS": odt.bits, "XNOR": int(case.xnor), "I_SIGNED": int(idt.signed), "I_BIPOLAR": int(idt.bipolar),
        "W_SIGNED": int(not case.xnor and case.wdt.signed), "W_BIPOLAR": int(not case.xnor and case.wdt.bipolar),
        "NTHRES": nthres, "ACTVAL": case.actval if thr is not None else 0, "WEIGHT_FILE": "L0_weights.mem",
        "THRESH_FILE": "L0_thresholds.mem" if thr is not None else "",
    }  # fmt: skip
    instream = StreamFormat(idt.bits, simd, sf, idt.signed, False)
    outstream = StreamFormat(odt.bits, pe, nf, odt.signed, False)
    return LayerRTL("L0", "bnn_mvau", params, instream, outstream, sf * nf, memories), idt


@st.composite
def mvau_cases(draw: st.DrawFn) -> MvauCase:
    mw, mh = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    pe, simd = draw(st.sampled_from(divisors(mh))), draw(st.sampled_from(divisors(mw)))
    xnor = draw(st.booleans())
    idt = Dt(1) if xnor else draw(st.sampled_from(MVAU_INPUTS))
    wdt = Dt(1) if xnor else draw(st.sampled_from(MVAU_WEIGHTS))
    nthres = draw(st.integers(0, 7))
    actval = draw(st.integers(-nthres, 0))
    margin = draw(st.sampled_from([1, 0, 2]))
    return MvauCase(
        mw,
        mh,
        pe,
        simd,
        xnor,
        idt,
        wdt,
        nthres,
        actval,
        margin,
        draw(st.integers(3, 6)),
        draw(st.integers(0, 2**32 - 1)),
    )


def check_mvau(case: MvauCase) -> None:
    rng = np.random.default_rng(case.seed)
    if case.xnor:
        x, w = rng.integers(0, 2, (case.frames, case.mw)), rng.integers(0, 2, (case.mh, case.mw))
        lo, hi = 0, case.mw
    else:
        x, w = case.idt.sample(rng, (case.frames, case.mw)), case.wdt.sample(rng, (case.mh, case.mw))
        bound = case.mw * case.idt.magnitude * case.wdt.magnitude
        lo, hi = -bound, bound
    thr = None
    if case.nthres:
        acc = mvau_reference(x, w, case.xnor, None, 0)
        thr = np.stack([pick_thresholds(rng, acc[:, r], lo, hi, case.nthres) for r in range(case.mh)])
    layer, idt = mvau_layer(w, thr, case)
    words = pack_words(idt.encode(x).reshape(-1, case.simd), idt.bits)
    check_all(
        simulate(layer, words, seeds=(case.seed % 1000 + 1,)),
        mvau_reference(x, w, case.xnor, thr, case.actval),
        f"{case}, params {layer.params}",
    )


# BIPOLAR inputs into the raw (unthresholded) accumulator, folded both ways: a combination the drawn ones miss.
BIPOLAR_ACC = MvauCase(6, 4, 2, 3, False, BIPOLAR, Dt(3, signed=True), 0, 0, 1, 4, 5)


@FAST
@given(mvau_cases())
@example(BIPOLAR_ACC)
def test_mvau_matches_reference(case: MvauCase) -> None:
    check_mvau(case)


@pytest.mark.slow
@EXTENDED
@given(mvau_cases())
def test_mvau_matches_reference_extended(case: MvauCase) -> None:
    check_mvau(case)


def test_mvau_xnor_popcounts_by_hand() -> None:
    # MW=4, MH=2, SIMD=2, PE=1: W = [[1,0,1,1], [0,0,0,0]] (0/1 codes). Word nf*SF+sf holds W[nf][2sf..2sf+1].
    params: dict[str, int | str] = {
        "MW": 4, "MH": 2, "PE": 1, "SIMD": 2, "IBITS": 1, "WBITS": 1, "ACCBITS": 5, "OBITS": 3, "XNOR": 1,
        "I_SIGNED": 0, "I_BIPOLAR": 0, "W_SIGNED": 0, "W_BIPOLAR": 0, "NTHRES": 0, "ACTVAL": 0,
        "WEIGHT_FILE": "w.mem", "THRESH_FILE": "",
    }  # fmt: skip
    layer = LayerRTL(
        "L0",
        "bnn_mvau",
        params,
        StreamFormat(1, 2, 2, False, False),
        StreamFormat(3, 1, 2, False, False),
        4,
        {"w.mem": ["1", "3", "0", "0"]},
    )
    # x = [1,0,1,1]: 4 matches with row 0, 1 with row 1; x = [0,1,0,0]: 0 and 3; x = [1,1,1,1]: 3 and 0.
    runs = simulate(layer, ["1", "3", "2", "0", "3", "3"])
    check_all(runs, np.array([[4, 1], [0, 3], [3, 0]]), "xnor mvau")
    assert all(run.words == ["4", "1", "0", "3", "3", "0"] for run in runs)


def test_mvau_integer_thresholds_by_hand() -> None:
    # UINT2 x, INT2 W = [[1,-2], [-1,1]], PE=2, SIMD=1; T = [[0,2], [-2,1]], ACTVAL=-1, ACCBITS=6.
    # Weight word sf: W[0][sf] | W[1][sf] << 2 -> 0xd (1, -1), 0x6 (-2, 1).
    # Threshold word: elements (0, 2, -2, 1) of 6 bits -> 0 | 2<<6 | 0x3e<<12 | 1<<18 = 0x07e080.
    params: dict[str, int | str] = {
        "MW": 2, "MH": 2, "PE": 2, "SIMD": 1, "IBITS": 2, "WBITS": 2, "ACCBITS": 6, "OBITS": 2, "XNOR": 0,
        "I_SIGNED": 0, "I_BIPOLAR": 0, "W_SIGNED": 1, "W_BIPOLAR": 0, "NTHRES": 2, "ACTVAL": -1,
        "WEIGHT_FILE": "w.mem", "THRESH_FILE": "t.mem",
    }  # fmt: skip
    layer = LayerRTL(
        "L0",
        "bnn_mvau",
        params,
        StreamFormat(2, 1, 2, False, False),
        StreamFormat(2, 2, 1, True, False),
        2,
        {"w.mem": ["d", "6"], "t.mem": ["07e080"]},
    )
    # x = [3,1]: acc = [1, -2] -> y = [0, 0]; x = [2,3]: acc = [-4, 1] -> y = [-1, 1]; x = [0,2]: acc = [-4, 2]
    # -> y = [-1, 1]; x = [1,0]: acc = [1, -1] -> y = [0, 0].
    runs = simulate(layer, ["3", "1", "2", "3", "0", "2", "1", "0"])
    check_all(runs, np.array([[0, 0], [-1, 1], [-1, 1], [0, 0]]), "integer mvau")
    assert all(run.words == ["0", "7", "7", "0"] for run in runs)


@dataclass(frozen=True)
class ThresholdCase:
    c: int
    pe: int
    idt: Dt
    nthres: int
    actval: int
    tbits_margin: int
    pixels: int  # channel vectors per frame
    frames: int
    seed: int


@st.composite
def threshold_cases(draw: st.DrawFn) -> ThresholdCase:
    c = draw(st.integers(1, 24))
    nthres = draw(st.integers(1, 7))
    return ThresholdCase(
        c,
        draw(st.sampled_from(divisors(c))),
        draw(st.sampled_from(PLAIN_INPUTS)),
        nthres,
        draw(st.integers(-nthres, 1)),
        draw(st.sampled_from([1, 0])),
        draw(st.integers(1, 3)),
        draw(st.integers(3, 6)),
        draw(st.integers(0, 2**32 - 1)),
    )


def check_thresholding(case: ThresholdCase) -> None:
    rng = np.random.default_rng(case.seed)
    x = case.idt.sample(rng, (case.frames, case.pixels, case.c))
    seen = x.reshape(-1, case.c)
    thr = np.stack([pick_thresholds(rng, seen[:, ch], case.idt.lo, case.idt.hi, case.nthres) for ch in range(case.c)])
    tbits = (
        signed_bits(
            min(int(thr.min()), case.idt.lo, case.actval), max(int(thr.max()), case.idt.hi, case.actval + case.nthres)
        )
        + case.tbits_margin
    )
    cf = case.c // case.pe
    tblocks = np.zeros((cf, case.pe * case.nthres), dtype=np.int64)
    for f in range(cf):
        for p in range(case.pe):
            for t in range(case.nthres):
                tblocks[f, p * case.nthres + t] = int(thr[f * case.pe + p, t]) & ((1 << tbits) - 1)
    odt = out_type(case.actval, case.actval + case.nthres)
    params: dict[str, int | str] = {
        "C": case.c, "PE": case.pe, "IBITS": case.idt.bits, "I_SIGNED": int(case.idt.signed), "TBITS": tbits,
        "OBITS": odt.bits, "NTHRES": case.nthres, "ACTVAL": case.actval, "THRESH_FILE": "L0_thresholds.mem",
    }  # fmt: skip
    words_per_frame = case.pixels * cf
    layer = LayerRTL(
        "L0",
        "bnn_thresholding",
        params,
        StreamFormat(case.idt.bits, case.pe, words_per_frame, case.idt.signed, False),
        StreamFormat(odt.bits, case.pe, words_per_frame, odt.signed, False),
        words_per_frame,
        {"L0_thresholds.mem": pack_words(tblocks, tbits)},
    )
    words = pack_words(case.idt.encode(x).reshape(-1, case.pe), case.idt.bits)
    check_all(
        simulate(layer, words, seeds=(case.seed % 1000 + 1,)),
        threshold_reference(x, thr, case.actval),
        f"{case}, thresholds {thr.tolist()}, params {params}",
    )


@FAST
@given(threshold_cases())
def test_thresholding_matches_reference(case: ThresholdCase) -> None:
    check_thresholding(case)


@pytest.mark.slow
@EXTENDED
@given(threshold_cases())
def test_thresholding_matches_reference_extended(case: ThresholdCase) -> None:
    check_thresholding(case)


def test_thresholding_by_hand() -> None:
    # C=2, PE=1, UINT2 in, T = [[1,2,3], [0,0,3]], ACTVAL=0, TBITS=4: words 0x321, 0x300.
    params: dict[str, int | str] = {
        "C": 2,
        "PE": 1,
        "IBITS": 2,
        "I_SIGNED": 0,
        "TBITS": 4,
        "OBITS": 2,
        "NTHRES": 3,
        "ACTVAL": 0,
        "THRESH_FILE": "t.mem",
    }
    layer = LayerRTL(
        "L0",
        "bnn_thresholding",
        params,
        StreamFormat(2, 1, 2, False, False),
        StreamFormat(2, 1, 2, False, False),
        2,
        {"t.mem": ["321", "300"]},
    )
    # [0,0] -> [0,2]; [2,3] -> [2,3]; [3,1] -> [3,2]; [1,2] -> [1,2]
    runs = simulate(layer, ["0", "0", "2", "3", "3", "1", "1", "2"])
    check_all(runs, np.array([[0, 2], [2, 3], [3, 2], [1, 2]]), "thresholding")


@dataclass(frozen=True)
class LabelCase:
    labels: int
    pe: int
    idt: Dt
    obits_margin: int
    frames: int
    seed: int
    slow: bool = False  # two cycles per word (PE = 1 only)


@st.composite
def label_cases(draw: st.DrawFn) -> LabelCase:
    labels = draw(st.integers(1, 24))
    pe = draw(st.sampled_from(divisors(labels)))
    return LabelCase(
        labels,
        pe,
        draw(st.sampled_from(PLAIN_INPUTS)),
        draw(st.sampled_from([0, 1])),
        draw(st.integers(3, 6)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.booleans()) if pe == 1 else False,
    )


def label_frames(rng: np.random.Generator, dt: Dt, frames: int, labels: int) -> np.ndarray:
    """Frames full of ties: all at the type's minimum, the maximum repeated at random places, a few distinct
    values, uniform ones."""
    rows = [np.full(labels, dt.lo)]  # every label ties at the most negative value: index 0
    for i in range(frames - 1):
        style = i % 3
        if style == 0:  # the type's maximum at several places
            row = dt.sample(rng, (labels,))
            row[rng.choice(labels, size=rng.integers(1, labels + 1))] = dt.hi
        elif style == 1:  # one to three distinct values
            row = rng.choice(dt.sample(rng, (rng.integers(1, 4),)), size=labels)
        else:
            row = dt.sample(rng, (labels,))
        rows.append(row)
    return np.stack(rows)


def check_label_select(case: LabelCase) -> None:
    rng = np.random.default_rng(case.seed)
    x = label_frames(rng, case.idt, case.frames, case.labels)
    obits = max(1, (case.labels - 1).bit_length()) + case.obits_margin
    params: dict[str, int | str] = {
        "LABELS": case.labels,
        "PE": case.pe,
        "IBITS": case.idt.bits,
        "I_SIGNED": int(case.idt.signed),
        "OBITS": obits,
        "SLOW": int(case.slow),
    }
    layer = LayerRTL(
        "L0",
        "bnn_label_select",
        params,
        StreamFormat(case.idt.bits, case.pe, case.labels // case.pe, case.idt.signed, False),
        StreamFormat(obits, 1, 1, False, False),
        case.labels // case.pe * (2 if case.slow else 1),
    )
    expected = label_reference(x)
    assert np.array_equal(expected, np.argmax(x, axis=1))
    words = pack_words(case.idt.encode(x).reshape(-1, case.pe), case.idt.bits)
    check_all(simulate(layer, words, seeds=(case.seed % 1000 + 1,)), expected[:, None], f"{case}, inputs {x.tolist()}")


@FAST
@given(label_cases())
def test_label_select_matches_reference(case: LabelCase) -> None:
    check_label_select(case)


@pytest.mark.slow
@EXTENDED
@given(label_cases())
def test_label_select_matches_reference_extended(case: LabelCase) -> None:
    check_label_select(case)


def test_label_select_by_hand() -> None:
    # LABELS=4, PE=2, UINT3: word = x[2k] | x[2k+1] << 3.
    params: dict[str, int | str] = {"LABELS": 4, "PE": 2, "IBITS": 3, "I_SIGNED": 0, "OBITS": 2}
    layer = LayerRTL(
        "L0", "bnn_label_select", params, StreamFormat(3, 2, 2, False, False), StreamFormat(2, 1, 1, False, False), 2
    )
    # [3,7,7,1] -> 1 (tie, lower index); [0,0,0,0] -> 0; [1,2,3,5] -> 3; [6,2,6,6] -> 0; [0,1,7,7] -> 2
    runs = simulate(layer, ["3b", "0f", "00", "00", "11", "2b", "16", "36", "08", "3f"])
    check_all(runs, np.array([[1], [0], [3], [0], [2]]), "label select")


@dataclass(frozen=True)
class DwcCase:
    bits: int
    n_in: int
    n_out: int
    chunks: int  # frame = chunks * lcm(IN, OUT) elements
    frames: int
    seed: int


@st.composite
def dwc_cases(draw: st.DrawFn) -> DwcCase:
    return DwcCase(
        draw(st.integers(1, 8)),
        draw(st.integers(1, 12)),
        draw(st.integers(1, 12)),
        draw(st.integers(1, 3)),
        draw(st.integers(3, 6)),
        draw(st.integers(0, 2**32 - 1)),
    )


def dwc_layer(bits: int, n_in: int, n_out: int, elems: int) -> LayerRTL:
    params: dict[str, int | str] = {"BITS": bits, "IN": n_in, "OUT": n_out}
    return LayerRTL(
        "L0",
        "bnn_dwc",
        params,
        StreamFormat(bits, n_in, elems // n_in, False, False),
        StreamFormat(bits, n_out, elems // n_out, False, False),
        max(elems // n_in, elems // n_out),
    )


def check_dwc(case: DwcCase) -> None:
    rng = np.random.default_rng(case.seed)
    elems = case.chunks * math.lcm(case.n_in, case.n_out)
    x = rng.integers(0, 1 << case.bits, size=(case.frames, elems))
    layer = dwc_layer(case.bits, case.n_in, case.n_out, elems)
    words = pack_words(x.reshape(-1, case.n_in), case.bits)
    check_all(simulate(layer, words, seeds=(case.seed % 1000 + 1, 17)), x, f"{case}")


@FAST
@given(dwc_cases())
def test_dwc_preserves_elements(case: DwcCase) -> None:
    check_dwc(case)


@pytest.mark.slow
@EXTENDED
@given(dwc_cases())
def test_dwc_preserves_elements_extended(case: DwcCase) -> None:
    check_dwc(case)


def test_dwc_by_hand() -> None:
    # BITS=4, IN=2, OUT=3: elements 1..6 as 0x21, 0x43, 0x65 leave as 0x321, 0x654.
    runs = simulate(dwc_layer(4, 2, 3, 6), ["21", "43", "65", "ba", "dc", "fe"], seeds=(1, 2))
    check_all(runs, np.array([[1, 2, 3, 4, 5, 6], [10, 11, 12, 13, 14, 15]]), "dwc")
    assert all(run.words == ["321", "654", "cba", "fed"] for run in runs)


# bnn_dwc once computed in_ready = (count - OUT*give) + IN <= CAP in $clog2(IN+OUT+1) bits: wherever
# 2*IN + OUT >= 2**CW that sum wrapped, the layer took words it had no room for and its count wrapped (74 of the
# 144 (IN, OUT) pairs up to 12 lost elements, 32 of them even without back-pressure). Two of those cases:


def test_dwc_takes_no_word_it_cannot_hold() -> None:
    # IN=2, OUT=1 (CAP=3): count 0 -> 2 -> 3, then give + take needs 3 - 1 + 2 = 4 > CAP. With a 2-bit count
    # this was 0 <= 3: the DWC emitted 0x1, 0x2 and then deadlocked.
    runs = simulate(dwc_layer(4, 2, 1, 6), ["21", "43", "65", "ba", "dc", "fe"], seeds=(1, 2))
    check_all(runs, np.array([[1, 2, 3, 4, 5, 6], [10, 11, 12, 13, 14, 15]]), "dwc IN=2 OUT=1")


def test_dwc_full_while_output_stalls() -> None:
    # IN=3, OUT=2 (CAP=5) never fills without back-pressure; with the output stalled at count=5, the sum 5 + 3 = 8
    # wrapped to 0 in 3 bits, and back-pressure seed 1 delivered only 8 of 12 output words.
    x = np.arange(1, 25).reshape(4, 6) % 16
    runs = simulate(dwc_layer(4, 3, 2, 6), pack_words(x.reshape(-1, 3), 4), seeds=(1, 2, 7))
    check_all(runs, x, "dwc IN=3 OUT=2")


@dataclass(frozen=True)
class FifoCase:
    bits: int
    elems: int  # WIDTH = bits * elems
    depth: int
    words: int  # per frame
    frames: int
    seed: int


@st.composite
def fifo_cases(draw: st.DrawFn) -> FifoCase:
    return FifoCase(
        draw(st.integers(1, 16)),
        draw(st.integers(1, 8)),
        draw(st.integers(2, 16)),
        draw(st.integers(1, 8)),
        draw(st.integers(3, 6)),
        draw(st.integers(0, 2**32 - 1)),
    )


def fifo_layer(bits: int, elems: int, depth: int, words: int) -> LayerRTL:
    fmt = StreamFormat(bits, elems, words, False, False)
    return LayerRTL("L0", "bnn_fifo", {"WIDTH": bits * elems, "DEPTH": depth}, fmt, fmt, words)


def check_fifo(case: FifoCase) -> None:
    rng = np.random.default_rng(case.seed)
    x = rng.integers(0, 1 << case.bits, size=(case.frames, case.words * case.elems))
    layer = fifo_layer(case.bits, case.elems, case.depth, case.words)
    words = pack_words(x.reshape(-1, case.elems), case.bits)
    check_all(simulate(layer, words, seeds=(case.seed % 1000 + 1, 17)), x, f"{case}")


@FAST
@given(fifo_cases())
def test_fifo_preserves_words(case: FifoCase) -> None:
    check_fifo(case)


@pytest.mark.slow
@EXTENDED
@given(fifo_cases())
def test_fifo_preserves_words_extended(case: FifoCase) -> None:
    check_fifo(case)


def test_fifo_by_hand() -> None:
    words = ["a5", "00", "ff", "3c", "81", "7e"]
    runs = simulate(fifo_layer(8, 1, 3, 2), words, seeds=(1, 2, 3))
    check_all(runs, np.array([[0xA5, 0x00], [0xFF, 0x3C], [0x81, 0x7E]]), "fifo")
    assert all(run.words == words for run in runs)
