"""Bitstreams with open tools: the self-checking board top around BUILD_DIR/rtl, synthesized with Yosys
(synth_ice40 / synth_ecp5), placed and routed with nextpnr and packed (icepack / ecppack), with a report of
utilisation, Fmax and frames per second, and clear results for a design that does not fit or misses its clock."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnflow.artifacts import build_golden_path, load_golden
from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_json, write_text
from bnnflow.hw.boards import Board, clock_plan, constraints, load_board
from bnnflow.hw.generate import Design, library_files, load_build_design
from bnnflow.hw.selftest import CHECK, CHECK_LIBRARY, SelfTest, default_frames, write_selftest
from bnnflow.hw.synth import find_tool, find_yosys
from bnnflow.render import render

BOARD_TOP = "bnn_board"
FPGA_DIR = "fpga"  # inside a build directory: fpga/<target>/


@dataclass(frozen=True)
class Target:
    """An FPGA part that the open tools build for, and what it holds."""

    name: str
    family: str  # ice40 | ecp5
    device: str  # nextpnr's device flag without dashes
    package: str
    capacity: dict[str, int]  # nextpnr's resource names
    bram_bits: int
    default_board: str
    default_mhz: float

    @property
    def logic(self) -> str:
        return "ICESTORM_LC" if self.family == "ice40" else "TRELLIS_COMB"

    @property
    def bram(self) -> str:
        return "ICESTORM_RAM" if self.family == "ice40" else "DP16KD"


TARGETS = {
    t.name: t
    for t in (
        Target("ice40-up5k", "ice40", "up5k", "sg48", {"ICESTORM_LC": 5280, "ICESTORM_RAM": 30}, 30 * 4096,
               "icebreaker", 48.0),
        Target("ice40-hx8k", "ice40", "hx8k", "ct256", {"ICESTORM_LC": 7680, "ICESTORM_RAM": 32}, 32 * 4096,
               "ice40-hx8k-breakout", 48.0),
        Target("ecp5-25k", "ecp5", "25k", "CABGA381", {"TRELLIS_COMB": 24288, "TRELLIS_FF": 24288, "DP16KD": 56},
               56 * 18432, "ulx3s", 100.0),
        Target("ecp5-85k", "ecp5", "85k", "CABGA381", {"TRELLIS_COMB": 83640, "TRELLIS_FF": 83640, "DP16KD": 208},
               208 * 18432, "ulx3s", 100.0),
    )
}  # fmt: skip


def _tools(family: str) -> dict[str, Path]:
    nextpnr = f"yowasp-nextpnr-{family}"
    packer = "yowasp-icepack" if family == "ice40" else "yowasp-ecppack"
    return {
        "yosys": find_yosys(),
        "nextpnr": find_tool(nextpnr, nextpnr),
        "packer": find_tool(packer, nextpnr),
    }


@dataclass(frozen=True)
class Timing:
    fmax_mhz: float | None
    requested_mhz: float
    path_start: str | None
    path_end: str | None

    @property
    def met(self) -> bool:
        return self.fmax_mhz is not None and self.fmax_mhz >= self.requested_mhz


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")
_FMAX = re.compile(r"Max frequency for clock '([^']+)': ([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_utilisation(log: str) -> dict[str, tuple[int, int]]:
    """nextpnr's "Device utilisation" table: resource -> (used, available)."""
    found: dict[str, tuple[int, int]] = {}
    for line in log.splitlines():
        m = _UTIL.match(line.strip("\r"))
        if m:
            found[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return found


def parse_timing(log: str, requested_mhz: float) -> Timing:
    """The lowest Fmax over the clocks nextpnr reports (its last report, after routing), and the start and end of
    the critical path of that clock."""
    fmax: dict[str, float] = {}
    for m in _FMAX.finditer(log):
        fmax[m.group(1)] = float(m.group(2))  # later reports (after routing) replace earlier ones
    if not fmax:
        return Timing(None, requested_mhz, None, None)
    clock = min(fmax, key=lambda c: fmax[c])
    start = end = None
    blocks = log.split(f"Critical path report for clock '{clock}'")
    if len(blocks) > 1:
        block = blocks[-1].split("Critical path report for")[0]
        names = re.findall(r"(?:Source|Sink) (\S+)", block)
        if names:
            start, end = _cell(names[0]), _cell(names[-1])
    return Timing(fmax[clock], requested_mhz, start, end)


def _cell(pin: str) -> str:
    return pin.rsplit(".", 1)[0]


@dataclass
class BitstreamReport:
    target: str
    board: str | None
    rtl_hash: str
    requested_mhz: float
    clock: str
    utilisation: dict[str, tuple[int, int]]
    timing: Timing
    ii_cycles: int
    bitstream: Path | None
    selftest: SelfTest
    wall_s: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.requested_mhz * 1e6 / self.ii_cycles

    @property
    def fps_at_fmax(self) -> float | None:
        return None if self.timing.fmax_mhz is None else self.timing.fmax_mhz * 1e6 / self.ii_cycles

    def to_dict(self) -> dict[str, Any]:
        t = self.timing
        return {
            "target": self.target,
            "board": self.board,
            "rtl_hash": self.rtl_hash,
            "clock": self.clock,
            "requested_mhz": self.requested_mhz,
            "fmax_mhz": t.fmax_mhz,
            "timing_met": t.met,
            "critical_path": {"start": t.path_start, "end": t.path_end},
            "utilisation": {k: {"used": u, "available": a} for k, (u, a) in sorted(self.utilisation.items())},
            "ii_cycles": self.ii_cycles,
            "fps_at_requested_clock": round(self.fps, 1),
            "fps_at_fmax": None if self.fps_at_fmax is None else round(self.fps_at_fmax, 1),
            "bitstream": self.bitstream.name if self.bitstream else None,
            "bitstream_bytes": self.bitstream.stat().st_size if self.bitstream else None,
            "selftest": self.selftest.to_dict(),
            "wall_s": self.wall_s,
        }

    def lines(self) -> list[str]:
        t = self.timing
        used = ", ".join(f"{k} {u}/{a}" for k, (u, a) in sorted(self.utilisation.items()) if u)
        fmax = "n/a" if t.fmax_mhz is None else f"{t.fmax_mhz:.1f}"
        verdict = "met" if t.met else f"MISSED (critical path {t.path_start} -> {t.path_end})"
        size = f"{self.bitstream.stat().st_size:,} bytes" if self.bitstream else "none"
        return [
            f"bitstream  {self.target} on {self.board or 'no board'}: {self.bitstream} ({size})",
            f"timing     Fmax {fmax} MHz for {self.requested_mhz:g} MHz requested ({self.clock}): {verdict}",
            f"speed      {self.fps:,.0f} frames/s at {self.requested_mhz:g} MHz (II {self.ii_cycles} cycles)",
            f"resources  {used}",
            f"rtl hash   {self.rtl_hash}",
        ]


def _fit_message(target: Target, over: dict[str, tuple[int, int]], ii: int, weight_bits: int) -> str:
    what = ", ".join(f"{u} of {a} {k}" for k, (u, a) in sorted(over.items()))
    if target.bram in over and weight_bits > target.bram_bits:
        fix = (f"the weights alone need {weight_bits:,} bits of its {target.bram_bits:,}: no folding fits; "
               "prune the network (bnnflow prune) or choose a larger part")  # fmt: skip
    else:
        factor = max(u / a for u, a in over.values())
        fix = f"fold it further, e.g. `bnnflow build --target-cycles-per-frame {math.ceil(ii * factor * 1.25)}`"
        if target.bram in over:
            fix += ", or give the self-test fewer images (--images)"
    return f"the design does not fit {target.name}: it needs {what}; {fix}"


def _weight_bits(design: Design) -> int:
    """Bits in the weight memories, from each layer's word width (PE x SIMD x WBITS) and depth."""
    total = 0
    for layer in design.layers:
        name = layer.params.get("WEIGHT_FILE")
        if name:
            width = int(layer.params["PE"]) * int(layer.params["SIMD"]) * int(layer.params["WBITS"])
            total += width * len((design.rtl_dir / str(name)).read_text().split())
    return total


def _run(cmd: list[str], cwd: Path, log: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    write_text(log, proc.stdout + proc.stderr)
    return proc


def _first_error(text: str) -> str:
    line = next((ln for ln in text.splitlines() if "ERROR" in ln), None)
    return (line or "no error line").strip()


def bitstream(
    build_dir: Path,
    target_name: str,
    board_name: str | None = None,
    mhz: float | None = None,
    frames: int | None = None,
    seed: int = 1,
    check: Any = None,
    out_dir: Path | None = None,
) -> BitstreamReport:
    """Synthesize, place, route and pack the self-checking board top around BUILD_DIR/rtl for a target, in
    BUILD_DIR/fpga/<target>. `check(work_dir, sources, selftest)` runs the self-test in simulation first when
    given (and raises to stop). `out_dir` puts the work elsewhere (a sweep keeps each part's apart)."""
    if target_name not in TARGETS:
        raise BnnflowError(f"unknown target '{target_name}'; choose one of {', '.join(TARGETS)}")
    target = TARGETS[target_name]
    design = load_build_design(build_dir)
    tools = _tools(target.family)
    board_key = target.default_board if board_name is None else board_name
    board: Board | None = None if board_key.lower() == "none" else load_board(board_key)
    if board is not None and target.name not in board.targets:
        raise BnnflowError(f"board {board.name} carries {', '.join(board.targets)}, not {target.name}; "
                           "choose another --board or --board none")  # fmt: skip
    mhz = float(mhz or target.default_mhz)
    if not 0 < mhz <= 1000:
        raise BnnflowError(f"clock {mhz:g} MHz out of range; choose 1 to 1000 MHz")
    plan = clock_plan(board, target.device, target.family, mhz)
    out = ensure_writable_dir(out_dir or Path(build_dir) / FPGA_DIR / target.name, "FPGA directory").resolve()
    began = time.perf_counter()
    wall: dict[str, float] = {}

    # Sources: the accelerator's RTL as written (copied, so read_slang finds it under its working directory),
    # the self-test around it, and the board top.
    for path in [*design.sources, *design.memories]:
        shutil.copyfile(path, out / path.name)
    lib = library_files(CHECK_LIBRARY)
    for path in lib:
        shutil.copyfile(path, out / path.name)
    leds = len(board.leds) if board else 8
    if frames is None:
        frames = default_frames(design, target.bram_bits, len(load_golden(build_golden_path(build_dir))["inputs"]))
    selftest = write_selftest(Path(build_dir), design, out, frames, plan["fout"] * 1e6, leds)
    polarity = "".join("1" if led.active_low else "0" for led in reversed(board.leds)) if board else "0" * leds
    write_text(out / f"{BOARD_TOP}.sv", render("bnnflow.hw", "board_top.sv.j2", board=board.name if board else
               "no board", target=target.name, rtl_hash=design.rtl_hash, mhz=plan["fout"], clock_note=plan["note"],
               clock=plan, leds=list(range(leds)), polarity=polarity))  # fmt: skip
    slang_sources = [p.name for p in design.sources] + [p.name for p in lib] + [f"{CHECK}.sv"]
    if check is not None:
        check(out, [out / name for name in slang_sources], selftest)
        wall["selftest_sim"] = round(time.perf_counter() - began, 1)

    ii = int(design.manifest["expected_ii"])
    weight_bits = _weight_bits(design)
    if weight_bits > target.bram_bits:  # before minutes of synthesis: no folding changes the bits to store
        per_block = target.bram_bits // target.capacity[target.bram]
        need = {target.bram: (math.ceil(weight_bits / per_block), target.capacity[target.bram])}
        raise BnnflowError(_fit_message(target, need, ii, weight_bits))

    # Synthesis.
    t0 = time.perf_counter()
    synth = "synth_ice40" if target.family == "ice40" else "synth_ecp5"
    script = (
        f"read_slang --threads 1 {' '.join(slang_sources)} --top {CHECK}; read_verilog -sv {BOARD_TOP}.sv; "
        f"{synth} -top {BOARD_TOP} -json synth.json; tee -q -o stat.json stat -json"
    )
    proc = _run([str(tools["yosys"]), "-q", "-p", script], out, out / "yosys.log")
    if proc.returncode != 0 or not (out / "synth.json").is_file():
        raise BnnflowError(f"Yosys could not synthesize {BOARD_TOP} for {target.name}: "
                           f"{_first_error(proc.stdout + proc.stderr)} (log: {out / 'yosys.log'})")  # fmt: skip
    wall["synth"] = round(time.perf_counter() - t0, 1)
    cells = json.loads((out / "stat.json").read_text())["design"]["num_cells_by_type"]
    bram_cells = cells.get("SB_RAM40_4K" if target.family == "ice40" else "DP16KD", 0)
    if bram_cells > target.capacity[target.bram]:
        over = {target.bram: (bram_cells, target.capacity[target.bram])}
        raise BnnflowError(_fit_message(target, over, ii, weight_bits))

    # Place and route (a missed clock is a result, not a failure: --timing-allow-fail), then pack.
    t0 = time.perf_counter()
    pins = out / ("pins.pcf" if target.family == "ice40" else "pins.lpf")
    if board is not None:
        write_text(pins, constraints(board, target.family))
    cmd = [str(tools["nextpnr"]), f"--{target.device}", "--package", target.package, "--json", "synth.json",
           "--freq", f"{mhz:g}", "--seed", str(seed), "--timing-allow-fail"]  # fmt: skip
    if target.family == "ice40":
        cmd += ["--asc", "routed.asc"] + (["--pcf", pins.name] if board else [])
    else:
        cmd += ["--textcfg", "routed.config"] + (["--lpf", pins.name] if board else [])
    proc = _run(cmd, out, out / "nextpnr.log")
    log = proc.stdout + proc.stderr
    util = {k: v for k, v in parse_utilisation(log).items() if k in target.capacity or v[0]}
    over = {k: v for k, v in util.items() if v[0] > v[1]}
    if over:
        raise BnnflowError(_fit_message(target, over, ii, weight_bits))
    routed = out / ("routed.asc" if target.family == "ice40" else "routed.config")
    if proc.returncode != 0 or not routed.is_file():
        raise BnnflowError(f"nextpnr could not place and route for {target.name}: {_first_error(log)} "
                           f"(log: {out / 'nextpnr.log'})")  # fmt: skip
    wall["place_and_route"] = round(time.perf_counter() - t0, 1)
    bitfile = out / ("bnn.bin" if target.family == "ice40" else "bnn.bit")
    proc = _run([str(tools["packer"]), routed.name, bitfile.name], out, out / "pack.log")
    if proc.returncode != 0 or not bitfile.is_file():
        raise BnnflowError(f"the packer failed: {_first_error(proc.stdout + proc.stderr)} (log: {out / 'pack.log'})")
    wall["total"] = round(time.perf_counter() - began, 1)
    report = BitstreamReport(target.name, board.name if board else None, design.rtl_hash, mhz, plan["note"],
                             util, parse_timing(log, mhz), ii, bitfile, selftest, wall)  # fmt: skip
    write_json(out / "report.json", report.to_dict())
    return report
