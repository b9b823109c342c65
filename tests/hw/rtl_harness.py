"""The harness of the RTL layer tests: stream datatypes, a one-layer design simulated in Verilator without and with
back-pressure, the element-by-element comparison, and the plain numpy references that several layers share."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings

from bnnflow.fileio import write_text
from bnnflow.hw.generate import TOP, Design
from bnnflow.hw.layers import LayerRTL, signed_bits
from bnnflow.render import render
from bnnflow.sim.harness import SimConfig, run_design

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


def layer_design(layer: LayerRTL, rtl: Path) -> Design:
    """A one-layer design in the new directory rtl: its memories and the top level generate() would render for a
    one-layer chain; the sources are the whole installed library."""
    rtl.mkdir(parents=True)
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
    return Design(rtl, [layer])


def simulate(layer: LayerRTL, words: list[str], seeds: tuple[int, ...] = (1,)) -> list[Run]:
    """Simulate `layer` alone on `words` (a whole number of frames): once without back-pressure, then once with
    back-pressure per seed, all from one compiled build. Mirrors generate() for a one-layer chain."""
    assert len(words) % layer.instream.words == 0
    runs = []
    with tempfile.TemporaryDirectory(prefix="bnn-layer-") as tmp:
        rtl, sim = Path(tmp) / "rtl", Path(tmp) / "sim"
        design = layer_design(layer, rtl)
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
