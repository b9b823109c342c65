"""The Vivado path for the generated RTL: a project that packages bnn_axis (the AXI4-Stream wrapper of bnn_top) as
an IP and, for a known Zynq board, builds a bitstream with a PS and an AXI DMA; written here, run where Vivado is."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bnnflow.dataflow.vivado import _which
from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_text
from bnnflow.render import render

WRAPPER = "bnn_axis"
WRAPPER_FILE = f"{WRAPPER}.sv"
SOURCES_FILE = "sources.f"
CONSTRAINTS_FILE = "constraints.xdc"
CREATE_PROJECT_TCL = "create_project.tcl"
BUILD_BITSTREAM_TCL = "build_bitstream.tcl"
BITSTREAM = "bnn.bit"  # with bnn.hwh beside it: the pair a PYNQ Overlay loads
IP_VLNV = "bnnflow.org:bnnflow:bnn_axis:1.0"
# The AXI DMA's stream widths are powers of two from 8 to 1024 bits.
DMA_MAX_BYTES = 128


@dataclass(frozen=True)
class Board:
    """A Zynq board that build_bitstream.tcl knows: its part, Vivado board part and processing-system IP."""

    name: str
    part: str
    board_part: str
    ps_ip: str


BOARDS = {
    "Pynq-Z1": Board("Pynq-Z1", "xc7z020clg400-1", "www.digilentinc.com:pynq-z1:part0:1.0", "processing_system7"),
    "ZCU104": Board("ZCU104", "xczu7ev-ffvc1156-2-e", "xilinx.com:zcu104:part0:1.1", "zynq_ultra_ps_e"),
}


@dataclass(frozen=True)
class VivadoProject:
    """The files write_vivado_project wrote; paths inside them are relative to out_dir, so it can move with the
    build directory. build_bitstream_tcl is None when no board is known for the part."""

    out_dir: Path
    sources_f: Path
    constraints: Path
    create_project_tcl: Path
    build_bitstream_tcl: Path | None
    wrapper: Path
    part: str
    board: str | None
    params: dict[str, int]

    @property
    def script(self) -> Path:
        """The script run_vivado_project runs: the bitstream build where there is one, else IP packaging."""
        return self.build_bitstream_tcl or self.create_project_tcl

    @property
    def product(self) -> Path:
        """What `script` leaves behind: the bitstream, or the packaged IP's component.xml."""
        return self.out_dir / (BITSTREAM if self.build_bitstream_tcl else "ip/component.xml")


def find_board(name: str) -> Board:
    """A known board by name (case-insensitive)."""
    for board in BOARDS.values():
        if board.name.lower() == name.lower():
            return board
    raise BnnflowError(f"unknown board '{name}'; known boards for the Vivado project: {', '.join(BOARDS)}")


def _board_for(part: str, board: str | None) -> Board | None:
    if board is None:
        # A part that only one known board carries implies that board.
        matches = [b for b in BOARDS.values() if b.part == part]
        return matches[0] if len(matches) == 1 else None
    known = find_board(board)
    if known.part != part:
        raise BnnflowError(f"board {known.name} carries part {known.part}, not {part}; pass that part or no board")
    return known


def dma_bytes(bits: int, what: str) -> int:
    """Bytes of the DMA stream that carries `bits`-bit words: the next power of two."""
    nbytes = 1 << max(0, math.ceil(math.log2(math.ceil(bits / 8))))
    if nbytes > DMA_MAX_BYTES:
        raise BnnflowError(
            f"bnn_top's {what} word has {bits} bits, wider than the AXI DMA's {8 * DMA_MAX_BYTES}-bit streams; "
            "fold the first/last layer with fewer elements per word"
        )
    return nbytes


def _stream_bits(manifest: dict[str, Any], key: str) -> tuple[int, int]:
    try:
        stream = manifest[key]
        bits, words = int(stream["bits"]) * int(stream["elems"]), int(stream["words"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BnnflowError(f"manifest.json has no valid '{key}' stream format; rewrite it with `bnnflow rtl`") from exc
    if bits < 1 or words < 1:
        raise BnnflowError(f"manifest.json '{key}' stream is empty ({bits} bits, {words} words); regenerate it")
    return bits, words


def wrapper_params(manifest: dict[str, Any]) -> dict[str, int]:
    """bnn_axis parameters for a manifest: word widths, output words per frame and the DMA stream bytes."""
    in_w, _ = _stream_bits(manifest, "input")
    out_w, out_words = _stream_bits(manifest, "output")
    return {
        "IN_W": in_w,
        "OUT_W": out_w,
        "OUT_WORDS": out_words,
        "IN_BYTES": dma_bytes(in_w, "input"),
        "OUT_BYTES": dma_bytes(out_w, "output"),
    }


def _rtl_files(rtl_dir: Path, manifest: dict[str, Any], key: str) -> list[Path]:
    names = manifest.get(key)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BnnflowError(f"manifest.json in {rtl_dir} has no '{key}' list; regenerate it with `bnnflow rtl`")
    missing = ", ".join(n for n in names if not (rtl_dir / n).is_file())
    if missing:
        raise BnnflowError(f"{rtl_dir} lacks {missing} listed in manifest.json; regenerate it with `bnnflow rtl`")
    return [rtl_dir / n for n in names]


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def write_vivado_project(
    rtl_dir: Path, manifest: dict[str, Any], out_dir: Path, part: str, clock_ns: float = 10.0, board: str | None = None
) -> VivadoProject:
    """Write sources.f, constraints.xdc, create_project.tcl and (for a known board) build_bitstream.tcl into
    out_dir, with a copy of bnn_axis.sv; the same inputs give the same bytes."""
    if manifest.get("top") != "bnn_top":
        raise BnnflowError(f"manifest.json names top '{manifest.get('top')}', bnn_axis wraps bnn_top; regenerate it")
    if not clock_ns > 0:
        raise BnnflowError(f"clock period {clock_ns} ns is not positive; choose e.g. 10.0")
    known = _board_for(part, board)
    params = wrapper_params(manifest)
    rtl = Path(rtl_dir).resolve()
    sources = [s for s in _rtl_files(rtl, manifest, "sources") if s.name != WRAPPER_FILE]
    memories = _rtl_files(rtl, manifest, "memories")
    out = ensure_writable_dir(Path(out_dir), "Vivado project directory").resolve()

    wrapper = out / WRAPPER_FILE
    write_text(wrapper, (Path(str(resources.files("bnnflow.hw"))) / "rtl" / WRAPPER_FILE).read_text())
    file_list = [_relative(s, out) for s in sources] + [WRAPPER_FILE]
    write_text(out / SOURCES_FILE, "".join(f"{name}\n" for name in file_list))

    context: dict[str, Any] = {
        "wrapper": WRAPPER,
        "part": part,
        "clock_ns": f"{clock_ns:g}",
        "clock_mhz": f"{1000.0 / clock_ns:.3f}".rstrip("0").rstrip("."),
        "params": params,
        "memories": [_relative(m, out) for m in memories],
        "rtl_hash": str(manifest.get("hash", "unknown")),
        "sources_file": SOURCES_FILE,
        "constraints_file": CONSTRAINTS_FILE,
        "ip_vlnv": IP_VLNV,
        "board": known,
        "bitstream": BITSTREAM,
        "dma_bits": {"mm2s": 8 * params["IN_BYTES"], "s2mm": 8 * params["OUT_BYTES"]},
    }
    write_text(out / CONSTRAINTS_FILE, render("bnnflow.hw", "vivado_constraints.xdc.j2", **context))
    write_text(out / CREATE_PROJECT_TCL, render("bnnflow.hw", "vivado_project.tcl.j2", **context))
    bitstream_tcl = None
    if known is not None:
        bitstream_tcl = out / BUILD_BITSTREAM_TCL
        write_text(bitstream_tcl, render("bnnflow.hw", "vivado_bitstream.tcl.j2", **context))
    return VivadoProject(
        out_dir=out,
        sources_f=out / SOURCES_FILE,
        constraints=out / CONSTRAINTS_FILE,
        create_project_tcl=out / CREATE_PROJECT_TCL,
        build_bitstream_tcl=bitstream_tcl,
        wrapper=wrapper,
        part=part,
        board=known.name if known else None,
        params=params,
    )


def find_vivado(env: dict[str, str] | None = None) -> str | None:
    """`vivado` on PATH, else $XILINX_VIVADO/bin/vivado; None where neither exists."""
    return _which("vivado", dict(os.environ if env is None else env), "XILINX_VIVADO")


def run_vivado_project(project: VivadoProject, vivado: str | None) -> Path:
    """Run the project's script in Vivado batch mode in out_dir; returns the bitstream (or packaged IP)."""
    out, script = project.out_dir, project.script
    if vivado is None or shutil.which(vivado) is None:
        raise BnnflowError(
            f"vivado not found on PATH or XILINX_VIVADO; the project is written in {out}: run "
            f"`vivado -mode batch -source {script}` on a machine with Vivado, or use FINN's docker image with "
            "Vivado mounted (FINN_XILINX_PATH, FINN_XILINX_VERSION)"
        )
    project.product.unlink(missing_ok=True)  # so that a product of an earlier run cannot pass for this one's
    cmd = [vivado, "-mode", "batch", "-source", str(script), "-log", str(out / "vivado.log"), "-nojournal"]
    proc = subprocess.run(cmd, cwd=out, check=False)  # cwd: Vivado drops its .Xil scratch directory there
    if proc.returncode != 0 or not project.product.is_file():
        made = f"no {project.product.name}"
        raise BnnflowError(f"Vivado failed on {script.name} (exit {proc.returncode}, {made}); see {out / 'vivado.log'}")
    return project.product
