"""The board self-test (hw/selftest.py's bnn_check) in Verilator: it runs until its UART line has been sent, and
reports the correct-prediction count, the exact-frame count and the line as a terminal would show it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_text
from bnnflow.hw.selftest import CHECK, SelfTest
from bnnflow.render import render
from bnnflow.sim.verilator import build_testbench, find_verilator


@dataclass(frozen=True)
class SelfTestRun:
    done: bool
    passed: bool
    correct: int
    exact: int
    leds: int
    cycles: int
    uart: str

    def line(self, expected: SelfTest) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"self-test  Verilator: {verdict}, {self.correct} of {expected.frames} correct (PyTorch: "
                f"{expected.pytorch_correct}), {self.exact} of {expected.frames} frames exact; UART "
                f"{self.uart.strip()!r}")  # fmt: skip


def run_selftest(work_dir: Path, sources: list[Path], selftest: SelfTest, sim_dir: Path) -> SelfTestRun:
    """Compile bnn_check (and what it instantiates) with a UART-decoding test bench and run it in work_dir,
    where its memory files are."""
    sim_dir = ensure_writable_dir(sim_dir, "self-test simulation directory").resolve()
    tb = sim_dir / "selftest_tb.cpp"
    write_text(tb, render("bnnflow.sim", "selftest_tb.cpp.j2", top=CHECK,
                          clks_per_bit=int(selftest.params["CLKS_PER_BIT"])))  # fmt: skip
    exe = build_testbench(find_verilator(), sources, tb, sim_dir / "obj_dir", CHECK)
    in_words = int(selftest.params["IN_WORDS"]) * selftest.frames
    budget = 200_000 + 200 * in_words + 50 * 12 * int(selftest.params["CLKS_PER_BIT"]) + 10**7
    result = sim_dir / "selftest.json"
    proc = subprocess.run([str(exe), str(result), str(budget)], cwd=work_dir, capture_output=True, text=True,
                          check=False)  # fmt: skip
    if not result.is_file():
        raise BnnflowError(f"the self-test simulation failed (exit {proc.returncode}); see {sim_dir}")
    raw = json.loads(result.read_text())
    run = SelfTestRun(raw["done"], raw["pass"], raw["correct"], raw["exact"], raw["led"], raw["cycles"], raw["uart"])
    if proc.returncode != 0:
        raise BnnflowError(f"the self-test sent no UART line within {budget} cycles (done: {run.done}); see {sim_dir}")
    return run
