"""The Vivado path without Vivado: the AXI4-Stream wrapper in Verilator, the generated project files (deterministic,
relocatable, naming every source and memory), Yosys reading the very same file list, and Vivado detection."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bnnflow.errors import BnnflowError
from bnnflow.fileio import write_text
from bnnflow.hw.generate import TOP, library_files, with_submodules
from bnnflow.hw.layers import LayerRTL, StreamFormat, pack_words
from bnnflow.hw.synth import find_yosys
from bnnflow.hw.xilinx import (
    BOARDS,
    VivadoProject,
    dma_bytes,
    find_board,
    find_vivado,
    run_vivado_project,
    write_vivado_project,
)
from bnnflow.render import render

PYNQ = "xc7z020clg400-1"


# ------------------------------------------------------------------------------------------------ a small design
def _layers() -> list[LayerRTL]:
    """Thresholding (with a memory file) then a width converter: 6-bit input words, 2-bit output words, 4 words
    per output frame."""
    thr = np.array([[1, 2, 3, 0, 1, 2], [3, 3, 3, 0, 0, 0]])  # 2 folds x (PE=2 x 3 thresholds), 4 bits each
    params: dict[str, int | str] = {"C": 4, "PE": 2, "IBITS": 3, "I_SIGNED": 0, "TBITS": 4, "OBITS": 2, "NTHRES": 3,
                                    "ACTVAL": 0, "THRESH_FILE": "L0_thresholds.mem"}  # fmt: skip
    src, mid, dst = (StreamFormat(3, 2, 2, False, False), StreamFormat(2, 2, 2, False, False),
                     StreamFormat(2, 1, 4, False, False))  # fmt: skip
    memories = {"L0_thresholds.mem": pack_words(thr, 4)}
    return [
        LayerRTL("L0", "bnn_thresholding", params, src, mid, 2, memories),
        LayerRTL("DWC_1", "bnn_dwc", {"BITS": 2, "IN": 2, "OUT": 1}, mid, dst, 4),
    ]


def make_rtl(rtl: Path) -> dict[str, Any]:
    """An RTL directory as the hardware stage writes it (library copies, bnn_top.sv, memories); its manifest."""
    rtl.mkdir(parents=True)
    layers = _layers()
    used = with_submodules({"bnn_fifo", *(layer.module for layer in layers)})
    library = [path for path in library_files() if path.stem in used]
    for path in library:
        shutil.copyfile(path, rtl / path.name)
    memories = []
    for layer in layers:
        for name, lines in layer.memories.items():
            write_text(rtl / name, "\n".join(lines) + "\n")
            memories.append(name)
    top = render("bnnflow.hw", "top.sv.j2", top=TOP, source="test_xilinx.py", layers=layers, depths=[2, 2],
                 in_width=layers[0].instream.width, out_width=layers[-1].outstream.width)  # fmt: skip
    write_text(rtl / f"{TOP}.sv", top)
    return {
        "top": TOP,
        "sources": [path.name for path in library] + [f"{TOP}.sv"],
        "memories": sorted(memories),
        "hash": "0" * 64,
        "input": layers[0].instream.to_dict(),
        "output": layers[-1].outstream.to_dict(),
        "expected_ii": 4,
    }


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    return tmp_path / "build"


@pytest.fixture
def manifest(build_dir: Path) -> dict[str, Any]:
    return make_rtl(build_dir / "rtl")


def _project(build_dir: Path, manifest: dict[str, Any], board: str | None = "Pynq-Z1") -> VivadoProject:
    part = BOARDS[board].part if board else PYNQ
    return write_vivado_project(build_dir / "rtl", manifest, build_dir / "vivado", part, board=board)


def _tcl_paths(text: str) -> list[str]:
    """Paths the TCL joins onto its own directory ([file join $here PATH])."""
    return [chunk.split("]", 1)[0].strip() for chunk in text.split("[file join $here ")[1:]]


# ------------------------------------------------------------------------------------------------ project files
def test_project_files_name_every_source_and_memory(build_dir, manifest) -> None:
    project = _project(build_dir, manifest)
    out = project.out_dir
    assert project.params == {"IN_W": 6, "OUT_W": 2, "OUT_WORDS": 4, "IN_BYTES": 1, "OUT_BYTES": 1}
    listed = project.sources_f.read_text().splitlines()
    # Compile order of the manifest, then the wrapper; relative to the project directory.
    assert listed == [f"../rtl/{name}" for name in manifest["sources"]] + ["bnn_axis.sv"]
    assert all((out / name).is_file() for name in listed)
    create = project.create_project_tcl.read_text()
    referenced = _tcl_paths(create)
    assert sorted(p for p in referenced if p.endswith(".mem")) == [f"../rtl/{m}" for m in manifest["memories"]]
    assert all((out / p).exists() or p in ("ip", "ip_project") for p in referenced), referenced
    assert f"-part {PYNQ}" in create and "set_property top bnn_axis" in create
    assert "set_property generic {IN_W=6 OUT_W=2 OUT_WORDS=4 IN_BYTES=1 OUT_BYTES=1}" in create
    assert "ipx::package_project" in create and "ipx::associate_bus_interfaces -busif m_axis -clock ap_clk" in create
    assert "constraints.xdc" in create and "sources.f" in create
    xdc = project.constraints.read_text()
    assert "create_clock -period 10 -name ap_clk [get_ports ap_clk]" in xdc
    assert project.build_bitstream_tcl is not None
    bit = project.build_bitstream_tcl.read_text()
    needles = ["source [file join $here create_project.tcl]", "www.digilentinc.com:pynq-z1:part0:1.0",
               "xilinx.com:ip:processing_system7", "xilinx.com:ip:axi_dma", "bnnflow.org:bnnflow:bnn_axis:1.0",
               "CONFIG.OUT_WORDS 4", "CONFIG.c_m_axis_mm2s_tdata_width 8", "PCW_FPGA0_PERIPHERAL_FREQMHZ 100",
               "launch_runs impl_1 -to_step write_bitstream", "bnn.bit", "bnn.hwh"]  # fmt: skip
    for needle in needles:
        assert needle in bit, needle
    assert "zynq_ultra_ps_e" not in bit
    # Nothing absolute: the directory works wherever the build directory goes.
    for path in (project.sources_f, project.create_project_tcl, project.build_bitstream_tcl, project.constraints):
        assert str(build_dir) not in path.read_text()
    assert project.wrapper.read_bytes() == (Path(__file__).parents[2] / "hw" / "rtl" / "bnn_axis.sv").read_bytes()


def test_project_is_deterministic_and_relocatable(build_dir, manifest, tmp_path) -> None:
    first = _project(build_dir, manifest)
    files = sorted(p.name for p in first.out_dir.iterdir())
    before = {name: (first.out_dir / name).read_bytes() for name in files}
    _project(build_dir, manifest)
    assert {name: (first.out_dir / name).read_bytes() for name in files} == before
    moved = tmp_path / "elsewhere" / "b"
    shutil.copytree(build_dir, moved)
    again = _project(moved, manifest)
    assert {name: (again.out_dir / name).read_bytes() for name in files} == before
    shutil.rmtree(build_dir)
    assert all((again.out_dir / line).is_file() for line in again.sources_f.read_text().splitlines())


def test_zcu104_block_design_and_clock(build_dir, manifest) -> None:
    project = write_vivado_project(build_dir / "rtl", manifest, build_dir / "v", BOARDS["ZCU104"].part, 4.0, "zcu104")
    assert project.board == "ZCU104" and project.build_bitstream_tcl is not None
    bit = project.build_bitstream_tcl.read_text()
    assert "xilinx.com:ip:zynq_ultra_ps_e" in bit and "xilinx.com:zcu104:part0:1.1" in bit
    assert "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ 250" in bit and "processing_system7" not in bit
    assert "create_clock -period 4 " in project.constraints.read_text()


def test_boards_and_parts(build_dir, manifest) -> None:
    from bnnflow.dataflow.config import BOARD_PARTS

    assert all(BOARD_PARTS[name] == board.part for name, board in BOARDS.items())
    with pytest.raises(BnnflowError, match=r"unknown board 'Arty'.*Pynq-Z1, ZCU104"):
        find_board("Arty")
    with pytest.raises(BnnflowError, match="board ZCU104 carries part xczu7ev-ffvc1156-2-e, not xc7z020clg400-1"):
        write_vivado_project(build_dir / "rtl", manifest, build_dir / "v", PYNQ, board="ZCU104")
    # The PYNQ-Z1's part implies the board; a part no known board carries gets the IP project only.
    assert _project(build_dir, manifest, board=None).board == "Pynq-Z1"
    ip_only = write_vivado_project(build_dir / "rtl", manifest, build_dir / "ku", "xcku040-ffva1156-2-e")
    assert ip_only.build_bitstream_tcl is None and ip_only.script == ip_only.create_project_tcl
    assert not (build_dir / "ku" / "build_bitstream.tcl").exists()


def test_bad_inputs_are_one_line_errors(build_dir, manifest) -> None:
    (build_dir / "rtl" / manifest["memories"][0]).unlink()
    cases = [
        (manifest, r"lacks L0_thresholds.mem listed in manifest.json; regenerate it with `bnnflow rtl`"),
        ({**manifest, "top": "other"}, "names top 'other'"),
        ({k: v for k, v in manifest.items() if k != "output"}, "no valid 'output' stream format"),
    ]
    for bad, message in cases:
        with pytest.raises(BnnflowError, match=message) as err:
            write_vivado_project(build_dir / "rtl", bad, build_dir / "v", PYNQ)
        assert "\n" not in str(err.value)
    assert [dma_bytes(bits, "input") for bits in (1, 8, 9, 24, 33, 1024)] == [1, 1, 2, 4, 8, 128]
    with pytest.raises(BnnflowError, match="1025 bits, wider than the AXI DMA's 1024-bit streams"):
        dma_bytes(1025, "input")


# ------------------------------------------------------------------------------------------------ Yosys
def test_yosys_reads_the_same_file_list(build_dir, manifest) -> None:
    """read_slang takes sources.f itself (-F: paths relative to the list) and elaborates bnn_axis over the generated
    top with its parameters; the memories must be found for that, as in Vivado."""
    try:
        yosys = find_yosys()
    except BnnflowError as exc:
        pytest.skip(f"Yosys unavailable: {exc}")
    project = _project(build_dir, manifest)
    generics = " ".join(f"-G {name}={value}" for name, value in project.params.items())
    script = (f"read_slang --threads 1 -F vivado/sources.f --top bnn_axis {generics}; "
              "hierarchy -check -top bnn_axis; stat")  # fmt: skip
    # read_slang sees only the working directory and below: run it in the build directory.
    proc = subprocess.run([str(yosys), "-p", script], cwd=build_dir, capture_output=True, text=True, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "ERROR" not in log, log[-3000:]
    assert "u_top.u_L0" in log and "u_top.u_DWC_1" in log  # read_slang inlines bnn_top and its layers
    (build_dir / "rtl" / manifest["memories"][0]).unlink()
    proc = subprocess.run([str(yosys), "-p", script], cwd=build_dir, capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "L0_thresholds.mem" in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------ Vivado detection
def _fake_vivado(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "vivado"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


def test_missing_vivado_is_a_one_line_error(build_dir, manifest, tmp_path) -> None:
    env = {"PATH": str(tmp_path / "empty")}
    assert find_vivado(env) is None
    project = _project(build_dir, manifest)
    with pytest.raises(BnnflowError) as err:
        run_vivado_project(project, find_vivado(env))
    message = str(err.value)
    assert "\n" not in message and message.startswith("vivado not found on PATH or XILINX_VIVADO")
    assert f"vivado -mode batch -source {project.out_dir}/build_bitstream.tcl" in message
    assert "FINN's docker image" in message


def test_fake_vivado_runs_the_bitstream_script(build_dir, manifest, tmp_path) -> None:
    # Records its arguments and leaves the bitstream where build_bitstream.tcl would.
    exe = _fake_vivado(tmp_path / "bin", 'printf "%s\\n" "$@" > args.txt\ntouch bnn.bit')
    assert find_vivado({"PATH": str(exe.parent)}) == str(exe)
    xilinx = tmp_path / "Xilinx" / "Vivado" / "2024.2"
    other = _fake_vivado(xilinx / "bin", "exit 0")
    assert find_vivado({"PATH": str(tmp_path / "empty"), "XILINX_VIVADO": str(xilinx)}) == str(other)
    project = _project(build_dir, manifest)
    assert run_vivado_project(project, find_vivado({"PATH": str(exe.parent)})) == project.out_dir / "bnn.bit"
    args = (project.out_dir / "args.txt").read_text().splitlines()
    assert args[:4] == ["-mode", "batch", "-source", str(project.out_dir / "build_bitstream.tcl")]
    failing = _fake_vivado(tmp_path / "bad", "exit 1")
    with pytest.raises(BnnflowError, match=r"Vivado failed on build_bitstream.tcl \(exit 1"):
        run_vivado_project(project, str(failing))


# ------------------------------------------------------------------------------------------------ Verilator
STAND_IN = """\
// A stand-in bnn_top: a one-word register slice, so words leave unchanged and back-pressure reaches the input.
module bnn_top (
    input  logic        clk,
    input  logic        rst_n,
    input  logic [11:0] in_data,
    input  logic        in_valid,
    output logic        in_ready,
    output logic [11:0] out_data,
    output logic        out_valid,
    input  logic        out_ready
);
  assign in_ready = !out_valid || out_ready;
  always_ff @(posedge clk) begin
    if (!rst_n) out_valid <= 1'b0;
    else if (in_ready) begin
      out_valid <= in_valid;
      if (in_valid) out_data <= in_data;
    end
  end
endmodule

// Two wrappers in lockstep: three-word and one-word output frames.
module axis_dut (
    input  logic        ap_clk,
    input  logic        ap_rst_n,
    input  logic [15:0] s_axis_tdata,
    input  logic        s_axis_tvalid,
    output logic        s_axis_tready,
    output logic [15:0] m_axis_tdata,
    output logic [ 1:0] m_axis_tkeep,
    output logic        m_axis_tvalid,
    input  logic        m_axis_tready,
    output logic        m_axis_tlast,
    output logic        m_axis_tlast_1
);
  logic [15:0] data_1;
  logic [1:0] keep_1;
  logic ready_1, valid_1;
  bnn_axis #(.IN_W(12), .OUT_W(12), .OUT_WORDS(3)) u_three (.*);
  bnn_axis #(.IN_W(12), .OUT_W(12), .OUT_WORDS(1)) u_one (
      .ap_clk, .ap_rst_n, .s_axis_tdata, .s_axis_tvalid, .s_axis_tready(ready_1), .m_axis_tdata(data_1),
      .m_axis_tkeep(keep_1), .m_axis_tvalid(valid_1), .m_axis_tready, .m_axis_tlast(m_axis_tlast_1)
  );
endmodule
"""

TESTBENCH = r"""
#include <cstdio>
#include <cstdlib>
#include <random>
#include "Vaxis_dut.h"
#include "verilated.h"

// Usage: Vtb WORDS SEED; prints "i DATA" per accepted input and "o DATA TLAST TLAST_1 TKEEP" per output beat.
int main(int argc, char** argv) {
  const int words = std::atoi(argv[1]);
  std::mt19937 rng(std::atoi(argv[2]));
  auto* ctx = new VerilatedContext;
  auto* top = new Vaxis_dut{ctx};
  top->ap_rst_n = 0;
  top->s_axis_tvalid = 0;
  top->m_axis_tready = 0;
  for (int i = 0; i < 4; ++i) {
    top->ap_clk = 0; top->eval(); top->ap_clk = 1; top->eval();
  }
  top->ap_rst_n = 1;
  int sent = 0, got = 0;
  bool offering = false;
  unsigned data = 0;
  for (long cycle = 0; got < words && cycle < 100000; ++cycle) {
    top->ap_clk = 0;
    if (!offering && sent < words && rng() % 4 != 0) {  // a word once offered stays until it is taken
      offering = true;
      data = rng() & 0xffffu;  // the top four bits are padding the wrapper must drop
    }
    top->s_axis_tvalid = offering;
    top->s_axis_tdata = data;
    top->m_axis_tready = rng() % 3 != 0;
    top->eval();
    if (top->s_axis_tvalid && top->s_axis_tready) {
      std::printf("i %04x\n", data);
      ++sent;
      offering = false;
    }
    if (top->m_axis_tvalid && top->m_axis_tready) {
      std::printf("o %04x %d %d %d\n", top->m_axis_tdata, top->m_axis_tlast, top->m_axis_tlast_1, top->m_axis_tkeep);
      ++got;
    }
    top->ap_clk = 1;
    top->eval();
  }
  top->final();
  delete top;
  delete ctx;
  return got == words ? 0 : 3;
}
"""


@pytest.mark.verilator
def test_axis_wrapper_passes_words_and_marks_frames(verilator, tmp_path) -> None:
    from bnnflow.sim.verilator import build_testbench

    (tmp_path / "dut.sv").write_text(STAND_IN)
    (tmp_path / "tb.cpp").write_text(TESTBENCH)
    wrapper = Path(__file__).parents[2] / "hw" / "rtl" / "bnn_axis.sv"
    exe = build_testbench(verilator, [wrapper, tmp_path / "dut.sv"], tmp_path / "tb.cpp", tmp_path / "obj", "axis_dut")
    words = 30
    for seed in (1, 2):
        proc = subprocess.run([str(exe), str(words), str(seed)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
        lines = [line.split() for line in proc.stdout.splitlines()]
        sent = [int(f[1], 16) for f in lines if f[0] == "i"]
        beats = [(int(f[1], 16), int(f[2]), int(f[3]), int(f[4])) for f in lines if f[0] == "o"]
        assert len(sent) == words and len(beats) == words
        assert [b[0] for b in beats] == [x & 0xFFF for x in sent]  # truncated to IN_W, zero-extended to 16 bits
        assert [b[1] for b in beats] == [int(i % 3 == 2) for i in range(words)]
        assert all(b[2] == 1 and b[3] == 0b11 for b in beats)
        assert len({x >> 12 for x in sent}) > 1  # the padding bits did vary


@pytest.mark.verilator
def test_axis_wrapper_rejects_illegal_parameters(verilator, tmp_path) -> None:
    (tmp_path / "bnn_top.sv").write_text(STAND_IN.split("// Two wrappers")[0])
    wrapper = Path(__file__).parents[2] / "hw" / "rtl" / "bnn_axis.sv"

    def lint(*generics: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(verilator.executable), "--lint-only", "--top-module", "bnn_axis", "-GIN_W=12", "-GOUT_W=12",
               *generics, str(wrapper), str(tmp_path / "bnn_top.sv")]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, env=verilator.env(), cwd=tmp_path, check=False)

    good = lint("-GOUT_WORDS=5", "-GIN_BYTES=4")
    assert good.returncode == 0, good.stderr
    for generics, message in [
        (("-GOUT_WORDS=0",), "OUT_WORDS (0) must be at least 1"),
        (("-GOUT_BYTES=1",), "OUT_BYTES (1) too small"),
    ]:
        bad = lint(*generics)
        assert bad.returncode != 0 and message in bad.stderr, (generics, bad.stderr)
