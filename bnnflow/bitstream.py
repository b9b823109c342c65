"""`bnnflow bitstream`: the board self-test is run in Verilator on the RTL of BUILD_DIR/rtl, then the same RTL goes
through Yosys, nextpnr and the packer (hw/fpga.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnflow.errors import BnnflowError
from bnnflow.hw.fpga import BitstreamReport, bitstream
from bnnflow.hw.selftest import SelfTest
from bnnflow.sim.selftest import SelfTestRun, run_selftest


@dataclass(frozen=True)
class BitstreamRun:
    report: BitstreamReport
    selftest: SelfTestRun | None

    def lines(self) -> list[str]:
        check = [self.selftest.line(self.report.selftest)] if self.selftest else []
        return [*check, *self.report.lines()]

    def timing_failure(self) -> str | None:
        t = self.report.timing
        if t.met:
            return None
        got = "no clock was analysed" if t.fmax_mhz is None else f"Fmax {t.fmax_mhz:.1f} MHz"
        return (f"timing missed on {self.report.target}: {got} for {t.requested_mhz:g} MHz requested, critical "
                f"path {t.path_start} -> {t.path_end}; the bitstream is written, but ask for --mhz "
                f"{int(t.fmax_mhz or 0)} or fold the design further")  # fmt: skip


def make_bitstream(build_dir: Path, target: str, check: bool = True, **options: Any) -> BitstreamRun:
    """A bitstream for `target` whose self-test has passed in Verilator first (unless check is off)."""
    ran: list[SelfTestRun] = []

    def simulate_selftest(work_dir: Path, sources: list[Path], selftest: SelfTest) -> None:
        result = run_selftest(work_dir, sources, selftest, work_dir / "sim")
        if not result.passed:
            raise BnnflowError(f"{result.line(selftest)}: the self-test fails in simulation, so no bitstream was "
                               "built; `bnnflow sim` on the build shows where the RTL differs")  # fmt: skip
        ran.append(result)

    report = bitstream(build_dir, target, check=simulate_selftest if check else None, **options)
    return BitstreamRun(report, ran[0] if ran else None)
