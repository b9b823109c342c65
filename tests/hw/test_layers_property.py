"""Every hand-written RTL layer (hw/rtl/*.sv) in Verilator against a plain numpy reference.

Each layer is simulated alone, as a one-layer chain rendered through the real top template (which puts a FIFO
after it), over random shapes, foldings and bit widths, each compiled design run without and with (seeded)
back-pressure. Memory files are laid out here from the RTL's documented word layout, with explicit loops, not
with the library's reshapes, so a layout slip in either place shows. Every output element is compared.
A hand-checked tiny example per layer pins the layouts with literal hex words.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bnnflow.fileio import write_text
from bnnflow.hw.generate import TOP, Design
from bnnflow.hw.layers import LayerRTL, StreamFormat, pack_words, signed_bits
from bnnflow.render import render
from bnnflow.sim.harness import SimConfig, run_design

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

# Every example is a Verilator compile (seconds), so few examples, always the same ones; `slow` runs more.
FAST = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXTENDED = settings(FAST, max_examples=25)
TOP_FIFO_DEPTH = 2  # generate()'s default depth for the FIFO after the last layer


# ------------------------------------------------------------------------------------------------ datatypes
@dataclass(frozen=True)
class Dt:
    """An integer stream datatype: `bits` wide, two's complement if signed, bipolar -1/+1 coded as 0/1."""

    bits: int
    signed: bool = False
    bipolar: bool = False

    @property
    def lo(self) -> int:
        if self.bipolar:
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        if self.bipolar:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def magnitude(self) -> int:
        return max(abs(self.lo), abs(self.hi))

    def __repr__(self) -> str:
        return "BIPOLAR" if self.bipolar else f"{'INT' if self.signed else 'UINT'}{self.bits}"

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        if self.bipolar:
            return rng.choice(np.array([-1, 1]), size=shape)
        return rng.integers(self.lo, self.hi + 1, size=shape)

    def encode(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.int64)
        assert v.min() >= self.lo and v.max() <= self.hi, f"{v} out of range for {self}"
        if self.bipolar:
            return (v + 1) // 2
        return v & ((1 << self.bits) - 1)


BIPOLAR = Dt(1, bipolar=True)
MVAU_INPUTS = [Dt(b, signed=True) for b in (2, 3, 4)] + [Dt(b) for b in range(2, 9)] + [BIPOLAR]
MVAU_WEIGHTS = [Dt(b, signed=True) for b in (2, 3, 4)] + [BIPOLAR]
PLAIN_INPUTS = [Dt(b) for b in range(1, 9)] + [Dt(b, signed=True) for b in range(2, 9)]


def out_type(lo: int, hi: int) -> Dt:
    """The narrowest type holding [lo, hi]: unsigned where lo >= 0."""
    return Dt(signed_bits(lo, hi), signed=True) if lo < 0 else Dt(max(1, hi.bit_length()))


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# ------------------------------------------------------------------------------------------------ simulation
@dataclass
class Run:
    values: np.ndarray  # decoded output, one row per frame
    words: list[str]  # raw output words as the test bench wrote them
    cycles: dict


# Verilator's runtime library objects, identical for every design here (same flags, no tracing), compiled by the
# first build of the session and copied into every later (fresh) obj_dir: each build then compiles only its own
# model and test bench (~3x faster). Their .mk rule makes them depend on the freshly written model makefile,
# so the copies are dated in the future to keep make from compiling them again.
_RUNTIME_OBJECTS: dict[str, bytes] = {}


def _seed_runtime(obj_dir: Path) -> None:
    obj_dir.mkdir(parents=True)
    future = time.time() + 3600
    for name, data in _RUNTIME_OBJECTS.items():
        (obj_dir / name).write_bytes(data)
        os.utime(obj_dir / name, (future, future))


def _keep_runtime(obj_dir: Path) -> None:
    if not _RUNTIME_OBJECTS:
        _RUNTIME_OBJECTS.update({p.name: p.read_bytes() for p in obj_dir.glob("verilated*.o")})


def simulate(layer: LayerRTL, words: list[str], seeds: tuple[int, ...] = (1,)) -> list[Run]:
    """Simulate `layer` alone on `words` (a whole number of frames): once without back-pressure, then once with
    back-pressure per seed, all from one compiled build. Mirrors generate() for a one-layer chain."""
    assert len(words) % layer.instream.words == 0
    runs = []
    with tempfile.TemporaryDirectory(prefix="bnn-layer-") as tmp:
        rtl, sim = Path(tmp) / "rtl", Path(tmp) / "sim"
        rtl.mkdir()
        for name, lines in layer.memories.items():
            write_text(rtl / name, "\n".join(lines) + "\n")
        top = render(
            "bnnflow.hw",
            "top.sv.j2",
            top=TOP,
            source=Path(__file__).name,
            layers=[layer],
            depths=[TOP_FIFO_DEPTH],
            in_width=layer.instream.width,
            out_width=layer.outstream.width,
        )
        write_text(rtl / f"{TOP}.sv", top)
        design = Design(rtl, [layer])
        _seed_runtime(sim / "obj_dir")
        for backpressure, seed in [(False, 0), *((True, s) for s in seeds)]:
            cfg = SimConfig(backpressure=backpressure, seed=seed, sim_dir=sim)
            values, cycles, _ = run_design(design, words, layer.instream, layer.outstream, cfg, sim)
            assert not cycles["timed_out"]
            assert cycles["received_words"] == len(words) // layer.instream.words * layer.outstream.words
            out_words = (sim / "output.hex").read_text().split()
            runs.append(Run(values, out_words, cycles))
        _keep_runtime(sim / "obj_dir")
    return runs


def check_all(runs: list[Run], expected: np.ndarray, what: str) -> None:
    expected = np.asarray(expected).reshape(len(expected), -1)
    for run, label in zip(runs, ["steady", *[f"back-pressure #{i}" for i in range(1, len(runs))]], strict=True):
        assert run.values.shape == expected.shape, f"{what} ({label}): shape {run.values.shape} != {expected.shape}"
        bad = [tuple(int(i) for i in ix) for ix in np.argwhere(run.values != expected)]
        assert len(bad) == 0, (
            f"{what} ({label}): {len(bad)} of {expected.size} output elements differ; first (frame, element) "
            f"{bad[0]}: expected {expected[bad[0]]}, got {run.values[bad[0]]}\n"
            f"expected\n{expected}\ngot\n{run.values}"
        )


# ------------------------------------------------------------------------------------------------ references
def mvau_reference(x: np.ndarray, w: np.ndarray, xnor: bool, thr: np.ndarray | None, actval: int) -> np.ndarray:
    """x (frames, MW), w (MH, MW): values, or 0/1 codes in XNOR mode. Returns (frames, MH)."""
    if xnor:
        acc = (x[:, None, :] == w[None, :, :]).sum(axis=-1)
    else:
        acc = x.astype(np.int64) @ w.astype(np.int64).T
    if thr is None:
        return acc
    return threshold_reference(acc, thr, actval)


def threshold_reference(x: np.ndarray, thr: np.ndarray, actval: int) -> np.ndarray:
    """x (..., C), thr (C, NTHRES): actval + #{t : x >= thr[c][t]}."""
    return actval + (x[..., :, None] >= thr).sum(axis=-1)


def label_reference(x: np.ndarray) -> np.ndarray:
    """Index of the first maximum of each row (a lower index wins ties)."""
    out = np.empty(len(x), dtype=np.int64)
    for i, row in enumerate(x):
        best = 0
        for j in range(1, len(row)):
            if row[j] > row[best]:
                best = j
        out[i] = best
    return out


def pick_thresholds(rng: np.random.Generator, seen: np.ndarray, lo: int, hi: int, n: int) -> np.ndarray:
    """n sorted thresholds for one channel: mostly at or next to values it really sees (so that `>=` is
    exercised at equality), some anywhere in [lo - 2, hi + 2]."""
    near = rng.choice(seen, size=n) + rng.integers(-1, 2, size=n)
    anywhere = rng.integers(lo - 2, hi + 3, size=n)
    return np.sort(np.where(rng.random(n) < 0.75, near, anywhere))


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


# ------------------------------------------------------------------------------------------------ sliding window
@dataclass(frozen=True)
class SwgCase:
    bits: int
    c: int
    simd: int
    h: int
    w: int
    k: tuple[int, int]
    s: tuple[int, int]
    d: tuple[int, int]
    par: int
    frames: int
    seed: int


@st.composite
def swg_cases(draw: st.DrawFn) -> SwgCase:
    c = draw(st.integers(1, 6))
    par = draw(st.integers(0, 1))
    simd = c if par else draw(st.sampled_from(divisors(c)))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers(dh * (kh - 1) + 1, 7))
    w = draw(st.integers(dw * (kw - 1) + 1, 7))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    return SwgCase(draw(st.integers(1, 8)), c, simd, h, w, (kh, kw), s, (dh, dw), par, draw(st.integers(2, 3)),
                   draw(st.integers(0, 2**32 - 1)))  # fmt: skip


def swg_reference(x: np.ndarray, case: SwgCase, oh: int, ow: int) -> np.ndarray:
    """im2col: for every output pixel, the window in (ky, kx, c) order."""
    (kh, kw), (sh, sw), (dh, dw) = case.k, case.s, case.d
    out = np.zeros((x.shape[0], oh, ow, kh, kw, case.c), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    out[:, oy, ox, ky, kx, :] = x[:, oy * sh + ky * dh, ox * sw + kx * dw, :]
    return out.reshape(x.shape[0], -1)


def check_swg(case: SwgCase) -> None:
    rng = np.random.default_rng(case.seed)
    (kh, kw), (sh, sw), (dh, dw) = case.k, case.s, case.d
    oh, ow = (case.h - dh * (kh - 1) - 1) // sh + 1, (case.w - dw * (kw - 1) - 1) // sw + 1
    x = rng.integers(0, 1 << case.bits, size=(case.frames, case.h, case.w, case.c))
    out_elems = case.simd * (kh * kw if case.par else 1)
    in_words = case.h * case.w * case.c // case.simd
    out_words = oh * ow * kh * kw * case.c // out_elems
    params: dict[str, int | str] = {
        "BITS": case.bits, "SIMD": case.simd, "C": case.c, "H": case.h, "W": case.w, "KH": kh, "KW": kw,
        "SH": sh, "SW": sw, "DH": dh, "DW": dw, "OH": oh, "OW": ow, "PAR": case.par,
    }  # fmt: skip
    layer = LayerRTL(
        "L0",
        "bnn_swg",
        params,
        StreamFormat(case.bits, case.simd, in_words, False, False),
        StreamFormat(case.bits, out_elems, out_words, False, False),
        max(in_words, out_words),
    )
    words = pack_words(x.reshape(-1, case.simd), case.bits)
    check_all(simulate(layer, words, seeds=(case.seed % 1000 + 1,)), swg_reference(x, case, oh, ow), f"{case}")


@FAST
@given(swg_cases())
def test_swg_matches_im2col(case: SwgCase) -> None:
    check_swg(case)


@pytest.mark.slow
@EXTENDED
@given(swg_cases())
def test_swg_matches_im2col_extended(case: SwgCase) -> None:
    check_swg(case)


# ------------------------------------------------------------------------------------------------ max-pool
@dataclass(frozen=True)
class PoolCase:
    bits: int
    signed: bool
    c: int
    pe: int
    k2: int
    pixels: int
    frames: int
    seed: int


@st.composite
def pool_cases(draw: st.DrawFn) -> PoolCase:
    c = draw(st.integers(1, 8))
    signed = draw(st.booleans())
    return PoolCase(draw(st.integers(2 if signed else 1, 8)), signed, c, draw(st.sampled_from(divisors(c))),
                    draw(st.integers(1, 9)), draw(st.integers(1, 4)), draw(st.integers(2, 3)),
                    draw(st.integers(0, 2**32 - 1)))  # fmt: skip


def check_pool(case: PoolCase) -> None:
    rng = np.random.default_rng(case.seed)
    lo, hi = (-(1 << (case.bits - 1)), (1 << (case.bits - 1)) - 1) if case.signed else (0, (1 << case.bits) - 1)
    x = rng.integers(lo, hi + 1, size=(case.frames, case.pixels, case.k2, case.c))
    expected = x.max(axis=2).reshape(case.frames, -1)
    in_words = case.pixels * case.k2 * case.c // case.pe
    params: dict[str, int | str] = {"BITS": case.bits, "SIGNED": int(case.signed), "C": case.c, "PE": case.pe,
                                    "K2": case.k2}  # fmt: skip
    layer = LayerRTL(
        "L0",
        "bnn_pool",
        params,
        StreamFormat(case.bits, case.pe, in_words, case.signed, False),
        StreamFormat(case.bits, case.pe, case.pixels * case.c // case.pe, case.signed, False),
        in_words,
    )
    codes = x.reshape(-1, case.pe) & ((1 << case.bits) - 1)
    check_all(simulate(layer, pack_words(codes, case.bits), seeds=(case.seed % 1000 + 1,)), expected, f"{case}")


@FAST
@given(pool_cases())
def test_pool_matches_max(case: PoolCase) -> None:
    check_pool(case)


@pytest.mark.slow
@EXTENDED
@given(pool_cases())
def test_pool_matches_max_extended(case: PoolCase) -> None:
    check_pool(case)


def test_pool_by_hand() -> None:
    # C=2, PE=2, K2=2, signed 4-bit: windows [(-1, 3), (2, -8)] -> (2, 3); [(7, -2), (-3, -1)] -> (7, -1).
    words = ["3f", "82", "e7", "fd"]
    runs = simulate(LayerRTL("L0", "bnn_pool", {"BITS": 4, "SIGNED": 1, "C": 2, "PE": 2, "K2": 2},
                             StreamFormat(4, 2, 2, True, False), StreamFormat(4, 2, 1, True, False), 2),
                    words, seeds=(1, 2))  # fmt: skip
    check_all(runs, np.array([[2, 3], [7, -1]]), "pool")
