"""The depthwise VVAU (hw/rtl/bnn_vvau.sv) in Verilator against a numpy reference, its throughput, and its synthesis.

Channels, kernel sizes, foldings (PE | C, SIMD | K), datatypes, thresholds and pixel counts are drawn at random;
each compiled design runs without and with back-pressure, every output element is compared with a plain numpy
depthwise reference, and the run without back-pressure must take exactly C*K/(PE*SIMD) cycles per pixel (one input
word per cycle, no replay) with the latency that hw/layers.py PIPELINE_STAGES records. Input, weight and threshold
words are laid out here from the RTL's documented word layout with explicit loops; hand-checked examples pin those
layouts with literal hex words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bnnflow.errors import BnnflowError
from bnnflow.hw.generate import FIFO_LATENCY
from bnnflow.hw.layers import PIPELINE_STAGES, LayerRTL, StreamFormat, pack_words, signed_bits
from bnnflow.sim.harness import steady_state_ii
from tests.hw.rtl_harness import (
    BIPOLAR,
    EXTENDED,
    FAST,
    MVAU_INPUTS,
    MVAU_WEIGHTS,
    Dt,
    Run,
    check_all,
    divisors,
    layer_design,
    out_type,
    pick_thresholds,
    simulate,
    threshold_reference,
)

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]


@dataclass(frozen=True)
class VvauCase:
    c: int  # channels
    k: int  # kernel positions (KH * KW)
    pe: int
    simd: int
    xnor: bool
    idt: Dt
    wdt: Dt
    nthres: int
    actval: int
    acc_margin: int  # ACCBITS = bits of the range + margin (the library uses 1)
    pixels: int  # one pixel is one frame of the harness
    seed: int

    @property
    def sf(self) -> int:
        return self.k // self.simd

    @property
    def nf(self) -> int:
        return self.c // self.pe

    @property
    def cycles(self) -> int:
        """Cycles per pixel: C*K/(PE*SIMD), one input word each."""
        return self.nf * self.sf


def vvau_accumulators(x: np.ndarray, w: np.ndarray, xnor: bool) -> np.ndarray:
    """x (pixels, C, K), w (C, K): values, or 0/1 codes in XNOR mode (then the number of matches). Returns
    (pixels, C): acc[n][c] = sum_k w[c][k] * x[n][c][k]."""
    if xnor:
        return (x == w[None, :, :]).sum(axis=-1)
    return (x.astype(np.int64) * w[None, :, :].astype(np.int64)).sum(axis=-1)


def input_words(codes: np.ndarray, case: VvauCase, bits: int) -> list[str]:
    """codes (pixels, C, K) as the input stream: per pixel, word (nf, sf) holds x[nf*PE+p][sf*SIMD+s] at element
    s*PE+p (channels innermost)."""
    pe, simd = case.pe, case.simd
    rows = np.zeros((len(codes) * case.nf * case.sf, simd * pe), dtype=np.int64)
    for n in range(len(codes)):
        for f in range(case.nf):
            for s_ in range(case.sf):
                for s in range(simd):
                    for p in range(pe):
                        rows[(n * case.nf + f) * case.sf + s_, s * pe + p] = codes[n, f * pe + p, s_ * simd + s]
    return pack_words(rows, bits)


def vvau_layer(w: np.ndarray, thr: np.ndarray | None, case: VvauCase) -> tuple[LayerRTL, Dt]:
    """The bnn_vvau instance for weights w (C, K) (values, or 0/1 codes in XNOR mode) and thresholds (C, NTHRES);
    also the input datatype."""
    pe, simd, sf, nf = case.pe, case.simd, case.sf, case.nf
    wbits = 1 if case.xnor else case.wdt.bits
    wcodes = w if case.xnor else case.wdt.encode(w)
    blocks = np.zeros((nf * sf, pe * simd), dtype=np.int64)
    for f in range(nf):
        for s_ in range(sf):
            for p in range(pe):
                for s in range(simd):
                    blocks[f * sf + s_, p * simd + s] = wcodes[f * pe + p, s_ * simd + s]
    bound = case.k * (1 if case.xnor else case.idt.magnitude * case.wdt.magnitude)
    lo, hi = -bound, bound
    nthres = 0 if thr is None else thr.shape[1]
    if thr is not None:
        lo, hi = min(lo, int(thr.min()), case.actval), max(hi, int(thr.max()), case.actval + nthres)
    accbits = signed_bits(lo, hi) + case.acc_margin
    memories = {"L0_weights.mem": pack_words(blocks, wbits)}
    if thr is not None:
        tblocks = np.zeros((nf, pe * nthres), dtype=np.int64)
        for f in range(nf):
            for p in range(pe):
                for t in range(nthres):
                    tblocks[f, p * nthres + t] = int(thr[f * pe + p, t]) & ((1 << accbits) - 1)
        memories["L0_thresholds.mem"] = pack_words(tblocks, accbits)
        odt = out_type(case.actval, case.actval + nthres)
    else:
        odt = Dt(case.k.bit_length()) if case.xnor else Dt(signed_bits(-bound, bound), signed=True)
    idt = Dt(1) if case.xnor else case.idt
    params: dict[str, int | str] = {
        "C": case.c, "K": case.k, "PE": pe, "SIMD": simd, "IBITS": idt.bits, "WBITS": wbits, "ACCBITS": accbits,
        "OBITS": odt.bits, "XNOR": int(case.xnor), "I_SIGNED": int(idt.signed), "I_BIPOLAR": int(idt.bipolar),
        "W_SIGNED": int(not case.xnor and case.wdt.signed), "W_BIPOLAR": int(not case.xnor and case.wdt.bipolar),
        "NTHRES": nthres, "ACTVAL": case.actval if thr is not None else 0, "WEIGHT_FILE": "L0_weights.mem",
        "THRESH_FILE": "L0_thresholds.mem" if thr is not None else "",
    }  # fmt: skip
    instream = StreamFormat(idt.bits, pe * simd, nf * sf, idt.signed, False)
    outstream = StreamFormat(odt.bits, pe, nf, odt.signed, False)
    return LayerRTL("L0", "bnn_vvau", params, instream, outstream, nf * sf, memories), idt


def check_throughput(run: Run, cycles: int, what: str) -> None:
    """Without back-pressure: a pixel's inputs every `cycles` cycles (one word per cycle, never refused) and its
    outputs `cycles` cycles after the previous pixel's; the first pixel's last output word cycles + the pipeline's
    stages + 1 + FIFO_LATENCY cycles after its first input word: `cycles` to take its words, then the pipeline
    registers, the output register and the top level's FIFO (the test bench counts the first and last cycle)."""
    out_last, in_first = run.cycles["out_last"], run.cycles["in_first"]
    gaps = np.diff(out_last).tolist()
    assert gaps == [cycles] * (len(out_last) - 1), f"{what}: cycles between output pixels {gaps}, expected {cycles}"
    assert steady_state_ii(out_last) == cycles, what
    starts = np.diff(in_first).tolist()
    assert starts == [cycles] * (len(in_first) - 1), f"{what}: input pixels begin at cycles {in_first}"
    latency = cycles + PIPELINE_STAGES["bnn_vvau"] + 1 + FIFO_LATENCY
    assert out_last[0] - in_first[0] + 1 == latency, f"{what}: latency, cycles {run.cycles}"


def check_vvau(case: VvauCase) -> None:
    rng = np.random.default_rng(case.seed)
    if case.xnor:
        x, w = rng.integers(0, 2, (case.pixels, case.c, case.k)), rng.integers(0, 2, (case.c, case.k))
        lo, hi = 0, case.k
    else:
        x, w = case.idt.sample(rng, (case.pixels, case.c, case.k)), case.wdt.sample(rng, (case.c, case.k))
        bound = case.k * case.idt.magnitude * case.wdt.magnitude
        lo, hi = -bound, bound
    acc = vvau_accumulators(x, w, case.xnor)
    thr = None
    expected = acc
    if case.nthres:
        thr = np.stack([pick_thresholds(rng, acc[:, c], lo, hi, case.nthres) for c in range(case.c)])
        expected = threshold_reference(acc, thr, case.actval)
    layer, idt = vvau_layer(w, thr, case)
    what = f"{case}, params {layer.params}"
    runs = simulate(layer, input_words(idt.encode(x), case, idt.bits), seeds=(case.seed % 1000 + 1,))
    check_all(runs, expected, what)
    check_throughput(runs[0], case.cycles, what)


@st.composite
def vvau_cases(draw: st.DrawFn) -> VvauCase:
    c, k = draw(st.integers(1, 16)), draw(st.integers(1, 9))
    pe, simd = draw(st.sampled_from(divisors(c))), draw(st.sampled_from(divisors(k)))
    xnor = draw(st.booleans())
    idt = Dt(1) if xnor else draw(st.sampled_from(MVAU_INPUTS))
    wdt = Dt(1) if xnor else draw(st.sampled_from(MVAU_WEIGHTS))
    nthres = draw(st.integers(0, 7))
    actval = draw(st.integers(-nthres, 0))
    margin = draw(st.sampled_from([1, 0, 2]))
    return VvauCase(c, k, pe, simd, xnor, idt, wdt, nthres, actval, margin, draw(st.integers(3, 6)),
                    draw(st.integers(0, 2**32 - 1)))  # fmt: skip


# A 3x3 kernel over all channels at once: one input word, and one cycle, per pixel (XNOR with thresholds).
FULLY_PARALLEL = VvauCase(4, 9, 4, 9, True, Dt(1), Dt(1), 3, -1, 1, 6, 21)
# BIPOLAR inputs into the raw (unthresholded) accumulator, folded both ways, a 1D kernel of 5.
BIPOLAR_ACC = VvauCase(6, 5, 2, 5, False, BIPOLAR, Dt(3, signed=True), 0, 0, 1, 4, 22)
# Unsigned 8-bit inputs and BIPOLAR weights, one channel and one kernel position per cycle, tight accumulator.
SERIAL = VvauCase(3, 9, 1, 3, False, Dt(8), BIPOLAR, 7, -3, 0, 3, 23)


@FAST
@given(vvau_cases())
@example(FULLY_PARALLEL)
@example(BIPOLAR_ACC)
@example(SERIAL)
def test_vvau_matches_reference(case: VvauCase) -> None:
    check_vvau(case)


@pytest.mark.slow
@EXTENDED
@given(vvau_cases())
def test_vvau_matches_reference_extended(case: VvauCase) -> None:
    check_vvau(case)


@pytest.mark.parametrize(
    ("c", "k", "pe", "simd"),
    [(4, 9, 4, 9), (8, 3, 8, 1), (6, 9, 2, 3), (5, 7, 1, 7), (2, 25, 1, 5)],
    ids=["ii1", "ii3-channels-parallel", "ii9", "ii5-kernel-parallel", "ii10-5x5"],
)
def test_vvau_steady_state_ii_is_one_pixel_per_c_k_over_pe_simd_cycles(c: int, k: int, pe: int, simd: int) -> None:
    """A run of 12 pixels without back-pressure: the measured steady-state II is C*K/(PE*SIMD) cycles per pixel
    (every pixel's, not only on average), the outputs are right, and so they are under back-pressure."""
    case = VvauCase(c, k, pe, simd, False, Dt(4, signed=True), Dt(2, signed=True), 2, -1, 1, 12, c * 100 + k)
    assert case.cycles == c * k // (pe * simd)
    check_vvau(case)


def test_vvau_xnor_popcounts_by_hand() -> None:
    # C=2, K=4, PE=2, SIMD=2: NF=1, SF=2. W = [[1,0,1,1], [0,0,1,0]] (0/1 codes).
    # Weight word sf: bit p*2+s = W[p][2sf+s] -> word 0: W[0][0] = 1 -> 0x1; word 1: W[0][2], W[0][3], W[1][2] -> 0x7.
    # Input word sf: bit s*2+p = x[p][2sf+s] (channels innermost).
    params: dict[str, int | str] = {
        "C": 2, "K": 4, "PE": 2, "SIMD": 2, "IBITS": 1, "WBITS": 1, "ACCBITS": 4, "OBITS": 3, "XNOR": 1,
        "I_SIGNED": 0, "I_BIPOLAR": 0, "W_SIGNED": 0, "W_BIPOLAR": 0, "NTHRES": 0, "ACTVAL": 0,
        "WEIGHT_FILE": "w.mem", "THRESH_FILE": "",
    }  # fmt: skip
    layer = LayerRTL("L0", "bnn_vvau", params, StreamFormat(1, 4, 2, False, False),
                     StreamFormat(3, 2, 1, False, False), 2, {"w.mem": ["1", "7"]})  # fmt: skip
    # x = W: 4 and 4 matches, words 0x1, 0x7. x = not W: 0 and 0, words 0xe, 0x8. x = all ones: 3 and 1, words
    # 0xf, 0xf. x = [[0,1,0,0], [0,0,0,0]]: 0 and 3, words 0x4 (x[0][1] is element s=1, p=0), 0x0; read with the
    # weights' layout it would give 1 and 2.
    runs = simulate(layer, ["1", "7", "e", "8", "f", "f", "4", "0"], seeds=(1, 2))
    check_all(runs, np.array([[4, 4], [0, 0], [3, 1], [0, 3]]), "xnor vvau")
    assert all(run.words == ["24", "00", "0b", "18"] for run in runs)
    check_throughput(runs[0], 2, "xnor vvau")


def test_vvau_integer_thresholds_by_hand() -> None:
    # UINT2 x, INT2 W = [[1,-2], [-1,1], [0,1], [-2,-1]], C=4, K=2, PE=2, SIMD=1: NF=2, SF=2, ACCBITS=6.
    # Weight word nf*2+sf: W[2nf][sf] | W[2nf+1][sf] << 2 -> (1,-1) 0xd, (-2,1) 0x6, (0,-2) 0x8, (1,-1) 0xd.
    # T = [[0,2], [-2,1], [-1,0], [1,3]], word nf holds rows 2nf, 2nf+1, 6 bits each:
    # (0, 2, -2, 1) -> 0 | 2<<6 | 0x3e<<12 | 1<<18 = 0x07e080; (-1, 0, 1, 3) -> 0x3f | 1<<12 | 3<<18 = 0x0c103f.
    params: dict[str, int | str] = {
        "C": 4, "K": 2, "PE": 2, "SIMD": 1, "IBITS": 2, "WBITS": 2, "ACCBITS": 6, "OBITS": 2, "XNOR": 0,
        "I_SIGNED": 0, "I_BIPOLAR": 0, "W_SIGNED": 1, "W_BIPOLAR": 0, "NTHRES": 2, "ACTVAL": -1,
        "WEIGHT_FILE": "w.mem", "THRESH_FILE": "t.mem",
    }  # fmt: skip
    layer = LayerRTL("L0", "bnn_vvau", params, StreamFormat(2, 2, 4, False, False),
                     StreamFormat(2, 2, 2, True, False), 4,
                     {"w.mem": ["d", "6", "8", "d"], "t.mem": ["07e080", "0c103f"]})  # fmt: skip
    # Input word (nf, sf): x[2nf][sf] | x[2nf+1][sf] << 2.
    # x = [[3,1], [2,3], [1,2], [0,3]]: words 0xb, 0xd, 0x1, 0xe; acc = [1, 1, 2, -3] -> y = [0, 1, 1, -1].
    # x = [[0,2], [3,0], [3,0], [2,1]]: words 0xc, 0x2, 0xb, 0x4; acc = [-4, -3, 0, -5] -> y = [-1, -1, 1, -1].
    # x = [[2,0], [0,1], [3,3], [1,0]]: words 0x2, 0x4, 0x7, 0x3; acc = [2, 1, 3, -2] -> y = [1, 1, 1, -1].
    runs = simulate(layer, ["b", "d", "1", "e", "c", "2", "b", "4", "2", "4", "7", "3"], seeds=(1, 2))
    check_all(runs, np.array([[0, 1, 1, -1], [-1, -1, 1, -1], [1, 1, 1, -1]]), "integer vvau")
    assert all(run.words == ["4", "d", "f", "d", "5", "d"] for run in runs)
    check_throughput(runs[0], 4, "integer vvau")


def test_vvau_synthesizes_with_yosys(tmp_path: Path) -> None:
    """read_slang accepts bnn_vvau with the shared core, and synth_xilinx keeps its weights in a memory."""
    from bnnflow.hw.synth import find_yosys, synthesize

    try:
        find_yosys()
    except BnnflowError as exc:
        pytest.skip(f"Yosys unavailable: {exc}")
    case = VvauCase(8, 9, 2, 3, False, Dt(4), Dt(2, signed=True), 3, 0, 1, 1, 31)
    rng = np.random.default_rng(case.seed)
    w = case.wdt.sample(rng, (case.c, case.k))
    thr = np.sort(rng.integers(-20, 21, (case.c, case.nthres)), axis=1)
    layer, _ = vvau_layer(w, thr, case)
    util = synthesize(layer_design(layer, tmp_path / "rtl"), tmp_path / "synth")
    assert util.luts > 0 and util.ffs > 0 and util.bram18 + util.lutram_cells > 0, util.cells
