"""The tile-sparse MVAU (hw/rtl/bnn_mvau_sparse.sv) in Verilator against a numpy reference, and its throughput.

Shapes, foldings, datatypes, thresholds and keep-masks over the NF x SF tile grid (all kept, all pruned, a single
tile, row folds left empty) are drawn at random; each compiled design runs without and with back-pressure, and every
output element is compared with the dense MVAU's reference on the weights with the pruned tiles zeroed (in XNOR
mode: the popcount over the kept columns only). The run without back-pressure must also deliver one vector per
max(SF, STEPS) cycles, every frame: the input is captured into a double buffer while the schedule walks the other
bank. Schedule, weight and threshold memories are laid out here from the RTL's documented word layout, with
explicit loops; hand-checked examples pin those layouts with literal hex words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bnnflow.hw.generate import FIFO_LATENCY
from bnnflow.hw.layers import PIPELINE_STAGES, LayerRTL, StreamFormat, pack_words, signed_bits
from bnnflow.sim.harness import steady_state_ii
from tests.hw.rtl_harness import (
    EXTENDED,
    FAST,
    MVAU_INPUTS,
    MVAU_WEIGHTS,
    Dt,
    Run,
    check_all,
    divisors,
    mvau_reference,
    out_type,
    pick_thresholds,
    simulate,
    threshold_reference,
)

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

Keep = tuple[tuple[bool, ...], ...]  # keep[nf][sf]: tile (nf, sf) is stored and visited


@dataclass(frozen=True)
class SparseCase:
    mw: int
    mh: int
    pe: int
    simd: int
    xnor: bool
    idt: Dt
    wdt: Dt
    nthres: int
    actval: int
    acc_margin: int  # ACCBITS = bits of the range + margin
    keep: Keep
    frames: int
    seed: int

    @property
    def sf(self) -> int:
        return self.mw // self.simd

    @property
    def nf(self) -> int:
        return self.mh // self.pe


@dataclass(frozen=True)
class Step:
    nf: int
    sf: int
    last: bool
    valid: bool  # False: the dummy step of a row fold without kept tiles


def schedule(keep: Keep) -> list[Step]:
    """The steps of one input vector: by row fold, then by column fold; an empty row fold gets one dummy step."""
    steps = []
    for n, row in enumerate(keep):
        kept = [s for s, k in enumerate(row) if k]
        if not kept:
            steps.append(Step(n, 0, last=True, valid=False))
        for i, s in enumerate(kept):
            steps.append(Step(n, s, last=i == len(kept) - 1, valid=True))
    return steps


def tile_mask(keep: Keep, pe: int, simd: int) -> np.ndarray:
    """(MH, MW) booleans: weight (r, c) lies in a kept tile."""
    nf, sf = len(keep), len(keep[0])
    mask = np.zeros((nf * pe, sf * simd), dtype=bool)
    for r in range(nf * pe):
        for c in range(sf * simd):
            mask[r, c] = keep[r // pe][c // simd]
    return mask


def sparse_accumulators(x: np.ndarray, w: np.ndarray, mask: np.ndarray, xnor: bool) -> np.ndarray:
    """x (frames, MW), w (MH, MW): values, or 0/1 codes in XNOR mode. Pruned weights count as absent: in XNOR
    mode a row's popcount runs over its kept columns only, otherwise they are zeros. Returns (frames, MH)."""
    if xnor:
        return ((x[:, None, :] == w[None, :, :]) & mask[None, :, :]).sum(axis=-1)
    return mvau_reference(x, np.where(mask, w, 0), False, None, 0)


def sparse_layer(w: np.ndarray, thr: np.ndarray | None, case: SparseCase) -> tuple[LayerRTL, Dt, int]:
    """The bnn_mvau_sparse instance for weights w (MH, MW) (values, or 0/1 codes in XNOR mode), thresholds and
    case.keep; also the input datatype and STEPS. Pruned tiles of w are never written to the weight memory."""
    mw, pe, simd, sf, nf = case.mw, case.pe, case.simd, case.sf, case.nf
    steps = schedule(case.keep)
    sfw = (sf - 1).bit_length() if sf > 1 else 1  # $clog2(SF)
    wbits = 1 if case.xnor else case.wdt.bits
    wcodes = w if case.xnor else case.wdt.encode(w)
    sched = np.zeros((len(steps), 1), dtype=np.int64)
    blocks = np.zeros((len(steps), pe * simd), dtype=np.int64)
    for k, step in enumerate(steps):
        sched[k, 0] = step.sf | int(step.last) << sfw | int(step.valid) << (sfw + 1)
        if step.valid:
            for p in range(pe):
                for s in range(simd):
                    blocks[k, p * simd + s] = wcodes[step.nf * pe + p, step.sf * simd + s]
    bound = mw * (1 if case.xnor else case.idt.magnitude * case.wdt.magnitude)
    lo, hi = -bound, bound
    nthres = 0 if thr is None else thr.shape[1]
    if thr is not None:
        lo, hi = min(lo, int(thr.min()), case.actval), max(hi, int(thr.max()), case.actval + nthres)
    accbits = signed_bits(lo, hi) + case.acc_margin
    memories = {"L0_sched.mem": pack_words(sched, sfw + 2), "L0_weights.mem": pack_words(blocks, wbits)}
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
        "MW": mw, "MH": case.mh, "PE": pe, "SIMD": simd, "IBITS": idt.bits, "WBITS": wbits, "ACCBITS": accbits,
        "OBITS": odt.bits, "XNOR": int(case.xnor), "I_SIGNED": int(idt.signed), "I_BIPOLAR": int(idt.bipolar),
        "W_SIGNED": int(not case.xnor and case.wdt.signed), "W_BIPOLAR": int(not case.xnor and case.wdt.bipolar),
        "NTHRES": nthres, "ACTVAL": case.actval if thr is not None else 0, "STEPS": len(steps),
        "WEIGHT_FILE": "L0_weights.mem", "THRESH_FILE": "L0_thresholds.mem" if thr is not None else "",
        "SCHED_FILE": "L0_sched.mem",
    }  # fmt: skip
    instream = StreamFormat(idt.bits, simd, sf, idt.signed, False)
    outstream = StreamFormat(odt.bits, pe, nf, odt.signed, False)
    layer = LayerRTL("L0", "bnn_mvau_sparse", params, instream, outstream, max(sf, len(steps)), memories)
    return layer, idt, len(steps)


def check_throughput(run: Run, sf: int, steps: int, what: str) -> None:
    """Without back-pressure: every output frame max(SF, STEPS) cycles after the previous one (the input is
    delivered at one word per cycle, so SF bounds it as much as the schedule's STEPS do); the first one SF + STEPS
    + the pipeline's stages + 1 + FIFO_LATENCY cycles after the first input word: SF to fill a bank, STEPS to
    issue, then the pipeline registers, the output register and the FIFO of the top level (the test bench counts
    the first and last cycle)."""
    ii = max(sf, steps)
    out_last, in_first = run.cycles["out_last"], run.cycles["in_first"]
    gaps = np.diff(out_last).tolist()
    assert gaps == [ii] * (len(out_last) - 1), f"{what}: cycles between output frames {gaps}, expected {ii} each"
    assert steady_state_ii(out_last) == ii, what
    latency = sf + steps + PIPELINE_STAGES["bnn_mvau_sparse"] + 1 + FIFO_LATENCY
    assert out_last[0] - in_first[0] + 1 == latency, f"{what}: latency, cycles {run.cycles}"
    # The second vector enters while the first is computed (the other bank); from then on the input waits for a
    # bank to be released, one per max(SF, STEPS) cycles.
    starts = np.diff(in_first).tolist()
    assert starts == [sf] + [ii] * (len(in_first) - 2), f"{what}: input frames begin at cycles {in_first}"


def check_sparse(case: SparseCase) -> None:
    rng = np.random.default_rng(case.seed)
    if case.xnor:
        x, w = rng.integers(0, 2, (case.frames, case.mw)), rng.integers(0, 2, (case.mh, case.mw))
        lo, hi = 0, case.mw
    else:
        x, w = case.idt.sample(rng, (case.frames, case.mw)), case.wdt.sample(rng, (case.mh, case.mw))
        bound = case.mw * case.idt.magnitude * case.wdt.magnitude
        lo, hi = -bound, bound
    acc = sparse_accumulators(x, w, tile_mask(case.keep, case.pe, case.simd), case.xnor)
    thr = None
    expected = acc
    if case.nthres:
        thr = np.stack([pick_thresholds(rng, acc[:, r], lo, hi, case.nthres) for r in range(case.mh)])
        expected = threshold_reference(acc, thr, case.actval)
    layer, idt, steps = sparse_layer(w, thr, case)
    what = f"{case}, STEPS={steps}, params {layer.params}"
    words = pack_words(idt.encode(x).reshape(-1, case.simd), idt.bits)
    runs = simulate(layer, words, seeds=(case.seed % 1000 + 1,))
    check_all(runs, expected, what)
    check_throughput(runs[0], case.sf, steps, what)


@st.composite
def keep_masks(draw: st.DrawFn, nf: int, sf: int) -> Keep:
    # Style, density and bits from a seeded generator: hypothesis' own small draws come out at their extremes (all
    # False, the last style) in most of the few examples FAST runs. The explicit examples below cover the
    # degenerate masks, so drawn ones lean to the random kinds.
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    style = rng.choice(["random", "empty row folds", "all kept", "all pruned", "single tile"],
                       p=[0.35, 0.35, 0.1, 0.1, 0.1])  # fmt: skip
    if style == "all kept":
        grid = [[True] * sf for _ in range(nf)]
    elif style == "all pruned":
        grid = [[False] * sf for _ in range(nf)]
    elif style == "single tile":
        n, s = rng.integers(nf), rng.integers(sf)
        grid = [[(i, j) == (n, s) for j in range(sf)] for i in range(nf)]
    else:
        density = rng.choice([0.25, 0.5, 0.75])
        grid = [[bool(rng.random() < density) for _ in range(sf)] for _ in range(nf)]
        if style == "empty row folds":  # one to NF - 1 of them (all of them is "all pruned")
            for n in rng.permutation(nf)[: rng.integers(1, max(2, nf))]:
                grid[n] = [False] * sf
    return tuple(tuple(row) for row in grid)


@st.composite
def sparse_cases(draw: st.DrawFn) -> SparseCase:
    mw, mh = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    pe, simd = draw(st.sampled_from(divisors(mh))), draw(st.sampled_from(divisors(mw)))
    xnor = draw(st.booleans())
    idt = Dt(1) if xnor else draw(st.sampled_from(MVAU_INPUTS))
    wdt = Dt(1) if xnor else draw(st.sampled_from(MVAU_WEIGHTS))
    nthres = draw(st.integers(0, 7))
    actval = draw(st.integers(-nthres, 0))
    margin = draw(st.sampled_from([1, 0, 2]))
    keep = draw(keep_masks(mh // pe, mw // simd))
    frames = draw(st.integers(6, 8))
    return SparseCase(mw, mh, pe, simd, xnor, idt, wdt, nthres, actval, margin, keep, frames,
                      draw(st.integers(0, 2**32 - 1)))  # fmt: skip


T, F = True, False
# Every tile pruned, XNOR with thresholds: each output is the thresholded zero; input-bound (STEPS = NF < SF).
ALL_PRUNED = SparseCase(12, 6, 2, 2, True, Dt(1), Dt(1), 3, -1, 1, ((F,) * 6,) * 3, 6, 11)
# A single kept tile in the middle of the grid, BIPOLAR inputs into the raw accumulator.
SINGLE_TILE = SparseCase(8, 6, 2, 2, False, Dt(1, bipolar=True), Dt(3, signed=True), 0, 0, 1,
                         ((F, F, F, F), (F, F, T, F), (F, F, F, F)), 6, 12)  # fmt: skip
# Compute-bound (STEPS = 7 > SF = 3) with an empty row fold between kept ones, signed inputs and weights.
COMPUTE_BOUND = SparseCase(6, 8, 2, 2, False, Dt(3, signed=True), Dt(2, signed=True), 2, -2, 0,
                           ((T, T, T), (F, F, F), (T, F, T), (F, T, F)), 7, 13)  # fmt: skip
# STEPS = SF exactly: the hand-over between banks has no cycle to spare.
BALANCED = SparseCase(8, 4, 1, 2, True, Dt(1), Dt(1), 0, 0, 1, ((T, F, F, F), (F, T, F, F), (F, F, F, F), (T, F, F, F)),
                      6, 14)  # fmt: skip


@FAST
@given(sparse_cases())
@example(ALL_PRUNED)
@example(SINGLE_TILE)
@example(COMPUTE_BOUND)
@example(BALANCED)
def test_mvau_sparse_matches_reference(case: SparseCase) -> None:
    check_sparse(case)


@pytest.mark.slow
@EXTENDED
@given(sparse_cases())
def test_mvau_sparse_matches_reference_extended(case: SparseCase) -> None:
    check_sparse(case)


def test_schedule_of_a_keep_mask() -> None:
    steps = schedule(((T, F, T), (F, F, F), (F, T, F)))
    assert [(s.nf, s.sf, s.last, s.valid) for s in steps] == [
        (0, 0, False, True),
        (0, 2, True, True),
        (1, 0, True, False),
        (2, 1, True, True),
    ]


def hand_layer(params: dict[str, int | str], instream: StreamFormat, outstream: StreamFormat,
               memories: dict[str, list[str]]) -> LayerRTL:  # fmt: skip
    ii = max(instream.words, int(params["STEPS"]))
    return LayerRTL("L0", "bnn_mvau_sparse", params, instream, outstream, ii, memories)


def test_mvau_sparse_xnor_popcounts_by_hand() -> None:
    # MW=4, SIMD=2 (SF=2), MH=3, PE=1 (NF=3), SFW=1. W codes = [[1,0,1,1], [-,-,-,-], [-,-,0,1]]: row fold 0
    # keeps both tiles, row fold 1 none, row fold 2 only tile sf=1. STEPS = 2 + 1 + 1 = 4.
    # Schedule words (sf | last << 1 | valid << 2): 4 (sf 0), 7 (sf 1, last), 2 (dummy: last, not valid), 7.
    # Weight words: W[0][0..1] = 0b01, W[0][2..3] = 0b11, dummy 0, W[2][2..3] = 0b10.
    params: dict[str, int | str] = {
        "MW": 4, "MH": 3, "PE": 1, "SIMD": 2, "IBITS": 1, "WBITS": 1, "ACCBITS": 5, "OBITS": 3, "XNOR": 1,
        "I_SIGNED": 0, "I_BIPOLAR": 0, "W_SIGNED": 0, "W_BIPOLAR": 0, "NTHRES": 0, "ACTVAL": 0, "STEPS": 4,
        "WEIGHT_FILE": "w.mem", "THRESH_FILE": "", "SCHED_FILE": "s.mem",
    }  # fmt: skip
    layer = hand_layer(params, StreamFormat(1, 2, 2, False, False), StreamFormat(3, 1, 3, False, False),
                       {"w.mem": ["1", "3", "0", "2"], "s.mem": ["4", "7", "2", "7"]})  # fmt: skip
    # Row 1 has no kept column (0 matches); row 2 counts matches in columns 2 and 3 only.
    # x = [1,0,1,1]: 4, 0, 1; x = [0,1,0,0]: 0, 0, 1; x = [0,0,0,1]: 2, 0, 2; x = [1,1,1,1]: 3, 0, 1.
    runs = simulate(layer, ["1", "3", "2", "0", "0", "2", "3", "3", "1", "3", "2", "0"], seeds=(1, 2))
    check_all(runs, np.array([[4, 0, 1], [0, 0, 1], [2, 0, 2], [3, 0, 1], [4, 0, 1], [0, 0, 1]]), "xnor sparse")
    assert all(run.words == ["4", "0", "1", "0", "0", "1", "2", "0", "2", "3", "0", "1", "4", "0", "1", "0", "0", "1"]
               for run in runs)  # fmt: skip
    check_throughput(runs[0], 2, 4, "xnor sparse")


def test_mvau_sparse_integer_thresholds_by_hand() -> None:
    # UINT2 x, INT2 W, MW=2, SIMD=1 (SF=2), MH=4, PE=2 (NF=2): row fold 0 keeps only tile sf=1, with
    # W[0][1] = -2, W[1][1] = 1; row fold 1 is empty. STEPS=2: schedule words 7 (sf 1, last, valid), 2 (dummy).
    # Weight word of step 0: codes 2 | 1 << 2 = 0x6; dummy 0.
    # T = [[0,2], [-2,1], [-1,0], [1,3]], ACCBITS=6, word nf holds rows 2nf, 2nf+1:
    # (0, 2, -2, 1) -> 0 | 2<<6 | 0x3e<<12 | 1<<18 = 0x07e080; (-1, 0, 1, 3) -> 0x3f | 1<<12 | 3<<18 = 0x0c103f.
    params: dict[str, int | str] = {
        "MW": 2, "MH": 4, "PE": 2, "SIMD": 1, "IBITS": 2, "WBITS": 2, "ACCBITS": 6, "OBITS": 2, "XNOR": 0,
        "I_SIGNED": 0, "I_BIPOLAR": 0, "W_SIGNED": 1, "W_BIPOLAR": 0, "NTHRES": 2, "ACTVAL": -1, "STEPS": 2,
        "WEIGHT_FILE": "w.mem", "THRESH_FILE": "t.mem", "SCHED_FILE": "s.mem",
    }  # fmt: skip
    layer = hand_layer(params, StreamFormat(2, 1, 2, False, False), StreamFormat(2, 2, 2, True, False),
                       {"w.mem": ["6", "0"], "s.mem": ["7", "2"], "t.mem": ["07e080", "0c103f"]})  # fmt: skip
    # Rows 2, 3 (empty row fold) threshold acc = 0: -1 + 2 = 1 and -1 + 0 = -1, whatever x. x[0] is never used.
    # x = [3,1]: acc = [-2, 1] -> [-1, 1]; x = [2,0]: acc = [0, 0] -> [0, 0]; x = [0,3]: acc = [-6, 3] -> [-1, 1].
    runs = simulate(layer, ["3", "1", "2", "0", "0", "3"], seeds=(1, 2))
    check_all(runs, np.array([[-1, 1, 1, -1], [0, 0, 1, -1], [-1, 1, 1, -1]]), "integer sparse")
    assert all(run.words == ["7", "d", "0", "d", "7", "d"] for run in runs)
    check_throughput(runs[0], 2, 2, "integer sparse")
