"""The bnnflow command: the main job, train/export round trip, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bnnflow.cli import main


def needs_verilator(test):
    """The commands that simulate the RTL (run, sim, build + sim) need Verilator: marked, and skipped without it."""
    return pytest.mark.verilator(pytest.mark.usefixtures("verilator")(test))


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("bnnflow: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def _assert_error_after_progress(code: int, err: str, *needles: str) -> None:
    """A build logs its steps on stderr; it must still end in exactly one error line and no traceback."""
    assert code != 0 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("bnnflow:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert errors[0].startswith("bnnflow: error: ")
    for needle in needles:
        assert needle in errors[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One `bnnflow run --epochs 1 --target none` (train, export, build, RTL, simulation) for the tests that need
    its files; each copies it."""
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["run", "--out", str(out), "--epochs", "1", "--target", "none"]) == 0
    return out


# Every line `bnnflow run` writes: its summary (label column), the estimate table, training and build progress.
BNNFLOW_LINES = [
    r"(model|accuracy|export|checkpoint|golden|dataflow|verdict|rtl|rtl hash|pytorch|cycles|cppsim|self-test"
    r"|bitstream|timing|speed|resources) +\S.*",
    r"layer +PE +SIMD +cycles +LUT +BRAM18 +DSP",
    r"-+",
    r"\w+_\d+ +\d+ +(\d+|-) +\d+ +\d+ +\d+ +\d+",
    r"total +\d+ +\d+ +\d+",
    r"II \d+ cycles \(slowest: \w+\), latency \d+ cycles, [\d,]+ FPS at \d+ MHz on \S+",
    r"epoch \d+/\d+: loss [\d.]+ train [\d.]+% test [\d.]+% \([\d.]+s\)",
    r"float teacher \(x[\d.]+ wide\): test [\d.]+% \([\d.]+s\)",
    r"[a-z_]+: \d+ inputs, .*",
    r"host: .*",
    r"bitstream for [a-z0-9-]+: self-test in Verilator, Yosys, nextpnr",
]


@needs_verilator
def test_main_job_runs_on_embedded_default(capfd, tmp_path: Path) -> None:
    import re

    code = main(["run", "--out", str(tmp_path), "--epochs", "3"])
    out, err = capfd.readouterr()  # at the file descriptors: what FINN, qonnx, torch or a tool would print too
    assert code == 0
    foreign = [line for line in (out + err).splitlines() if not any(re.fullmatch(p, line) for p in BNNFLOW_LINES)]
    assert not foreign, foreign
    assert "accuracy   test" in out and "QONNX == PyTorch on 64 golden inputs" in out
    assert "dataflow   10 FINN steps, each equal to PyTorch (tie-aware) on 16 golden inputs" in out
    assert "II " in out and "MVAU_hls_0" in out
    assert (tmp_path / "dataflow" / "estimates.json").is_file()
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "golden.npz").is_file()
    assert (tmp_path / "train" / "checkpoint.pt").is_file() and (tmp_path / "train" / "metrics.json").is_file()
    # ... and ends with an iCE40 UP5K bitstream of the simulated RTL, whose self-test passed in Verilator.
    report = json.loads((tmp_path / "dataflow" / "fpga" / "ice40-up5k" / "report.json").read_text())
    manifest = json.loads((tmp_path / "dataflow" / "rtl" / "manifest.json").read_text())
    sim = json.loads((tmp_path / "dataflow" / "sim" / "report.json").read_text())
    assert report["rtl_hash"] == manifest["hash"] == sim["rtl_hash"]
    assert (tmp_path / "dataflow" / "fpga" / "ice40-up5k" / "bnn.bin").stat().st_size == report["bitstream_bytes"]
    assert report["utilisation"]["ICESTORM_LC"]["used"] > 0 and report["fmax_mhz"] > 0
    assert "self-test  Verilator: PASS" in out and "bitstream  ice40-up5k on iCEBreaker" in out
    assert f"frames/s at 24 MHz (II {report['ii_cycles']} cycles)" in out and report["timing_met"]


def test_train_then_export(capsys, tmp_path: Path) -> None:
    code, out, err = _run(
        capsys,
        "train",
        "--model",
        "tfc",
        "--wbits",
        "2",
        "--abits",
        "2",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--out",
        str(tmp_path),
        "--no-progress",
    )
    assert code == 0, err
    assert "epoch 1/1" in err and "test accuracy" in out
    code, out, err = _run(capsys, "export", str(tmp_path), "--golden-samples", "5")
    assert code == 0, err
    assert "QONNX equals PyTorch on 5 inputs" in out
    golden = np.load(tmp_path / "golden.npz")
    assert golden["inputs"].shape == (5, 64) and golden["outputs"].shape == (5, 10)


def test_train_config_file_and_flag_override(capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"model: tfc\ndataset: digits\nepochs: 5\nout_dir: {tmp_path / 'o'}\nprogress: false\n")
    code, _, err = _run(capsys, "train", "--config", str(cfg), "--epochs", "1", "--distill-alpha", "0.5",
                        "--distill-temperature", "2", "--weight-decay", "1e-5")  # fmt: skip
    assert code == 0, err
    assert "epoch 1/1" in err and "epoch 2/" not in err
    recorded = json.loads((tmp_path / "o" / "metrics.json").read_text())["config"]
    assert (recorded["distill_alpha"], recorded["distill_temperature"], recorded["weight_decay"]) == (0.5, 2.0, 1e-5)


def test_unknown_model(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "train", "--model", "vgg", "--dataset", "digits", "--out", str(tmp_path))
    _assert_one_line_error(code, err, "unknown model 'vgg'", "tfc")


def test_unsupported_bits(capsys, tmp_path: Path) -> None:
    code, _, err = _run(
        capsys, "train", "--model", "tfc", "--wbits", "3", "--dataset", "digits", "--out", str(tmp_path)
    )
    _assert_one_line_error(code, err, "unsupported bit widths w3a1", "w1a1, w1a2, w2a2")


def test_missing_data_files(capsys, tmp_path: Path) -> None:
    code, _, err = _run(
        capsys,
        "train",
        "--model",
        "tfc",
        "--dataset",
        "mnist",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(tmp_path),
    )
    _assert_one_line_error(code, err, "train-images-idx3-ubyte.gz not found", str(tmp_path))


def test_corrupt_data_file(capsys, tmp_path: Path) -> None:
    for name in ("data_batch_1.bin", "data_batch_2.bin"):
        (tmp_path / name).write_bytes(b"\x00" * 3073)
    code, _, err = _run(capsys, "train", "--model", "cnv", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "data_batch_1.bin has 3073 bytes, expected 30730000")


def test_unwritable_output_directory(capsys, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    code, _, err = _run(capsys, "run", "--out", str(blocker / "out"), "--epochs", "1", "--target", "none")
    _assert_one_line_error(code, err, "cannot write to output directory", "choose another directory")
    assert blocker.read_text().startswith("a file")


def test_missing_checkpoint(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "export", str(tmp_path / "nothing.pt"))
    _assert_one_line_error(code, err, "nothing.pt does not exist", "bnnflow train --out DIR")


def test_export_of_missing_directory(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "export", str(tmp_path / "never-trained"))
    _assert_one_line_error(code, err, "never-trained does not exist", "training output directory")
    assert "--out /" not in err


@needs_verilator
def test_corrupt_golden_file(capsys, run_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(run_dir, tmp_path / "r")
    (tmp_path / "r" / "golden.npz").write_bytes(b"PK\x03\x04 truncated zip")
    code, _, err = _run(capsys, "build", str(tmp_path / "r" / "model.onnx"), "--out", str(tmp_path / "b"))
    _assert_one_line_error(code, err, "golden.npz is corrupt", "write it again")
    assert not (tmp_path / "b" / "intermediate" / "qonnx_to_finn.onnx").exists()
    code, _, err = _run(capsys, "sim", str(tmp_path / "r" / "dataflow"), "--golden", str(tmp_path / "r" / "golden.npz"))
    _assert_one_line_error(code, err, "golden.npz is corrupt")


def test_float_onnx_from_another_exporter(capsys, tmp_path: Path) -> None:
    """A plain float ONNX graph (no quantizers), as torch.onnx writes it, is refused in one line."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2"),
        ],
        "float_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [w1, w2],
    )  # fmt: skip
    path = tmp_path / "float.onnx"
    onnx.save(helper.make_model(graph, producer_name="pytorch"), str(path))
    np.save(tmp_path / "x.npy", rng.random((4, 16)).astype(np.float32))
    code, _, err = _run(capsys, "golden", str(path), "--inputs", str(tmp_path / "x.npy"))
    assert code == 0, err
    code, _, err = _run(capsys, "build", str(path), "--out", str(tmp_path / "b"))
    _assert_error_after_progress(code, err, "no quantizers", "float ONNX graph", "brevitas.export.export_qonnx")


def test_unknown_operator_is_named(capsys, tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("FancyQuant", ["x"], ["y"], name="fq0", domain="my.ops")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(graph), str(path))
    code, _, err = _run(capsys, "build", str(path), "--out", str(tmp_path / "b"), "--no-verify")
    _assert_one_line_error(code, err, "node 'fq0' (op type FancyQuant, domain my.ops)", "neither an ONNX nor a QONNX")


def test_network_finn_cannot_map_is_refused_by_node(capsys, tmp_path: Path) -> None:
    """A float Sigmoid between quantized layers stays between hardware layers: the one node is named."""
    import brevitas.nn as qnn
    import torch

    from bnnflow.training.export import export_module

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(bit_width=2), qnn.QuantLinear(12, 10, bias=False, weight_bit_width=2),
        qnn.QuantIdentity(bit_width=2), qnn.QuantLinear(10, 9, bias=False, weight_bit_width=2),
        torch.nn.Sigmoid(), qnn.QuantIdentity(bit_width=2), qnn.QuantLinear(9, 4, bias=False, weight_bit_width=2),
    )  # fmt: skip
    export_module(model, np.random.default_rng(0).random((4, 12)).astype(np.float32), tmp_path / "src")
    code, _, err = _run(capsys, "build", str(tmp_path / "src" / "model.onnx"), "--out", str(tmp_path / "b"))
    _assert_error_after_progress(code, err, "(op type Sigmoid) is left between hardware layers", "quantized activation")


def test_golden_for_a_model_exported_elsewhere(capsys, tmp_path: Path) -> None:
    """`bnnflow golden` writes golden.npz from qonnx' execution and checks it against PyTorch's outputs."""
    import brevitas.nn as qnn
    import torch

    from bnnflow.training.export import write_qonnx

    torch.manual_seed(0)
    model = torch.nn.Sequential(qnn.QuantIdentity(bit_width=2), qnn.QuantLinear(6, 3, bias=True, weight_bit_width=2))
    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    write_qonnx(model.eval(), torch.from_numpy(x[:1]), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", x)
    with torch.no_grad():
        np.save(tmp_path / "y.npy", model(torch.from_numpy(x)).numpy())
    np.save(tmp_path / "wrong.npy", np.zeros((5, 3), dtype=np.float32) + 7)
    code, out, err = _run(capsys, "golden", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npy"),
                          "--outputs", str(tmp_path / "y.npy"))  # fmt: skip
    assert code == 0, err
    assert "5 inputs" in out and (tmp_path / "golden.npz").is_file()
    code, _, err = _run(capsys, "golden", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npy"),
                        "--outputs", str(tmp_path / "wrong.npy"), "--out", str(tmp_path / "g2.npz"))  # fmt: skip
    _assert_one_line_error(code, err, "disagrees with PyTorch on 15 output elements")
    assert not (tmp_path / "g2.npz").exists()
    code, _, err = _run(capsys, "golden", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "none.npy"))
    _assert_one_line_error(code, err, "inputs file", "not found")


def test_console_script_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bnnflow.cli",
            "train",
            "--model",
            "tfc",
            "--abits",
            "7",
            "--dataset",
            "digits",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "bnnflow: error: unsupported bit widths w1a7 for zoo model 'tfc'; supported: w1a1, w1a2, w2a2"
    )


@pytest.mark.parametrize("args", [["models"], ["--version"]])
def test_info_commands(capsys, args: list[str]) -> None:
    code, out, _ = _run(capsys, *args)
    assert code == 0
    assert ("cnv" in out and "cifar10" in out) if args == ["models"] else "0.1.0" in out


@needs_verilator
def test_build_command_with_config_and_overrides(capsys, run_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(run_dir, tmp_path / "r")
    cfg = tmp_path / "build.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'b'}\ntarget_cycles_per_frame: 100000\nverify_samples: 2\n")
    code, out, err = _run(
        capsys,
        "build",
        str(tmp_path / "r" / "model.onnx"),
        "--config",
        str(cfg),
        "--target-cycles-per-frame",
        "256",
    )
    assert code == 0, err
    assert "estimate: 2 inputs, top-1 divergent 0, near-ties 0" in err
    assert "II " in out and "FPS at 100 MHz" in out
    est = json.loads((tmp_path / "b" / "estimates.json").read_text())
    assert est["initiation_interval_cycles"] <= 256


@needs_verilator
def test_build_to_bitstream_without_vivado_stops_with_reason(
    capsys, run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    shutil.copytree(run_dir, tmp_path / "r")
    code, out, err = _run(
        capsys,
        "build",
        str(tmp_path / "r" / "model.onnx"),
        "--out",
        str(tmp_path / "b"),
        "--to",
        "bitstream",
        "--board",
        "Pynq-Z1",
        "--no-verify",
    )
    assert code == 0, err
    assert "stopped after the estimates: --to bitstream needs vivado and vitis_hls" in out
    assert json.loads((tmp_path / "b" / "estimates.json").read_text())["fpga_part"] == "xc7z020clg400-1"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--folding-config-file", "missing.json"], "folding config missing.json not found"),
        (["--board", "Nexys"], "unknown board 'Nexys'"),
        (["--stop-step", "place"], "unknown stop_step 'place'"),
    ],
)
@needs_verilator
def test_build_bad_options(capsys, run_dir: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    shutil.copytree(run_dir, tmp_path / "r")
    code, _, err = _run(capsys, "build", str(tmp_path / "r" / "model.onnx"), "--out", str(tmp_path / "b"), *args)
    _assert_one_line_error(code, err, needle)


def test_build_malformed_onnx(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not onnx")
    code, _, err = _run(capsys, "build", str(bad), "--out", str(tmp_path / "b"), "--no-verify")
    _assert_one_line_error(code, err, "is not a valid ONNX model")


@needs_verilator
def test_sim_command_with_relative_build_dir(capsys, run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    shutil.copytree(run_dir, tmp_path / "r")
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "sim", "r/dataflow", "--samples", "5", "--backpressure")
    assert code == 0, err
    assert "rtl        5 frames in Verilator: 0 of 5 output elements differ from FINN's execution" in out
    assert "pytorch    host part + RTL vs golden: 5 inputs, top-1 divergent 0" in out
    assert "(with back-pressure)" in out
    assert json.loads((tmp_path / "r" / "dataflow" / "sim" / "report.json").read_text())["frames"] == 5


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory) -> Path:
    from bnnflow.training.config import TrainConfig
    from bnnflow.training.train import train

    out = tmp_path_factory.mktemp("digits")
    return train(TrainConfig(dataset="digits", epochs=1, batch_size=50, out_dir=out, progress=False)).checkpoint


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--method", "unstructured", "--sparsity", "1.5"], ["sparsity=1.5 is outside [0, 1)"]),
        (["--method", "node", "--sparsity", "-0.2"], ["outside [0, 1)"]),
        (["--method", "tile"], ["needs a target", "--speedup"]),
        (["--method", "tile", "--speedup", "2", "--layers", "fc0,fc9"], ["fc9", "its layers are fc0, fc1, fc2, fc3"]),
        (["--method", "unstructured", "--sparsity", "0.5", "--no-build"], []),
    ],
)
def test_bad_pruning_requests_are_one_line(capsys, tmp_path: Path, digits_checkpoint, args, needles) -> None:
    if not needles:  # no folding target given
        code, _, err = _run(capsys, "prune", str(digits_checkpoint), *args, "--out", str(tmp_path))
        _assert_one_line_error(code, err, "--target-cycles-per-frame")
        return
    code, _, err = _run(capsys, "prune", str(digits_checkpoint), *args, "--target-cycles-per-frame", "256",
                        "--out", str(tmp_path))  # fmt: skip
    _assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "unpruned").exists()  # refused before any work


def test_unreachable_pruning_target_is_one_line(capsys, tmp_path: Path, digits_checkpoint) -> None:
    code, _, err = _run(capsys, "prune", str(digits_checkpoint), "--method", "tile", "--speedup", "5",
                        "--target-cycles-per-frame", "64", "--out", str(tmp_path))  # fmt: skip
    _assert_error_after_progress(code, err, "no tile pruning reaches 13 cycles per frame", "fastest it can get is 64")
    assert not (tmp_path / "checkpoint.pt").exists()


def test_pruning_section_of_a_training_config(capsys, tmp_path: Path, digits_checkpoint) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text("model: tfc\ndataset: digits\nprune:\n  method: unstructured\n  sparsity: 2.0\n")
    code, _, err = _run(capsys, "train", "--config", str(cfg), "--out", str(tmp_path / "t"))
    _assert_one_line_error(code, err, "sparsity=2.0 is outside [0, 1)")
    cfg.write_text("prune:\n  method: unstructured\n  sparsity: 0.5\n  steps: 1\n  epochs_per_step: 0\n"
                   "  finetune_epochs: 0\n")  # fmt: skip
    code, out, _ = _run(capsys, "prune", str(digits_checkpoint), "--config", str(cfg), "--target-cycles-per-frame",
                        "256", "--no-build", "--out", str(tmp_path / "p"))  # fmt: skip
    assert code == 0, out
    report = json.loads((tmp_path / "p" / "prune.json").read_text())
    assert report["method"] == "unstructured" and abs(report["pruned"]["sparsity"] - 0.5) < 0.01
    assert (tmp_path / "p" / "model.onnx").is_file() and (tmp_path / "p" / "golden.npz").is_file()
