"""Pruned networks in Verilator: tile-pruned layers run a sparse schedule, bit-exact against PyTorch and FINN,
with the measured II equal to the estimate; node-pruned networks are smaller stock designs; unstructured
pruning saves no cycle. The whole `bnnflow prune` path runs on the embedded digits set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bnnflow.artifacts import load_onnx, step_model_path
from bnnflow.prune import mvau_folding
from bnnflow.sim.harness import SimConfig, SimReport, simulate
from bnnflow.tiles import kept_tiles
from bnnflow.training.config import TrainConfig
from bnnflow.training.data import Dataset
from bnnflow.training.models import ConvLayer, ModelSpec, build_model, randomize_batchnorm
from bnnflow.training.train import train
from tests.pruned import tile_pruned_build

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """f(wbits, abits): a TFC trained for 3 epochs on the embedded 8x8 digits (seconds)."""
    cache: dict[tuple[int, int], Path] = {}

    def make(wbits: int, abits: int) -> Path:
        if (wbits, abits) not in cache:
            out = tmp_path_factory.mktemp(f"digits-w{wbits}a{abits}")
            cfg = TrainConfig(model="tfc", wbits=wbits, abits=abits, dataset="digits", epochs=3, batch_size=50,
                              out_dir=out, progress=False, golden_samples=16)  # fmt: skip
            cache[(wbits, abits)] = train(cfg).checkpoint
        return cache[(wbits, abits)]

    return make


def _check(report: SimReport, build_dir: Path) -> None:
    assert report.mismatches_vs_finn == 0  # every output element of the RTL equals FINN's execution
    assert report.vs_pytorch is not None and report.vs_pytorch.mismatches == 0
    assert report.vs_pytorch.top1_divergent == 0
    estimates = json.loads((build_dir / "estimates.json").read_text())
    assert report.measured_ii == report.expected_ii == estimates["initiation_interval_cycles"]


def _prune(checkpoint: Path, out: Path, *args: str) -> dict:
    from bnnflow.cli import main

    assert main(["prune", str(checkpoint), "--target-cycles-per-frame", "256", "--steps", "2",
                 "--epochs-per-step", "1", "--finetune-epochs", "1", "--out", str(out), *args]) == 0  # fmt: skip
    return json.loads((out / "prune.json").read_text())


@pytest.mark.parametrize(("wbits", "abits"), [(1, 1), pytest.param(2, 2, marks=pytest.mark.slow)])
def test_tile_pruned_network_runs_a_sparse_schedule(digits_checkpoint, tmp_path, capsys, wbits, abits) -> None:
    report = _prune(digits_checkpoint(wbits, abits), tmp_path, "--method", "tile", "--speedup", "2")
    printed = capsys.readouterr().out
    before = json.loads((tmp_path / "unpruned" / "build" / "estimates.json").read_text())
    after = json.loads((tmp_path / "build" / "estimates.json").read_text())
    ii0, ii1 = before["initiation_interval_cycles"], after["initiation_interval_cycles"]
    assert ii1 <= -(-ii0 // 2) and ii1 == report["pruned_cycles"]
    assert f"cycles     {ii0} -> {ii1} per frame" in printed
    sim = simulate(SimConfig(build_dir=tmp_path / "build", cppsim=False))
    _check(sim, tmp_path / "build")
    modules = {
        layer["module"] for layer in json.loads((tmp_path / "build" / "rtl" / "manifest.json").read_text())["layers"]
    }
    assert "bnn_mvau_sparse" in modules
    # The weight memories hold only the kept tiles.
    dense_words = sum(lyr["cycles"] for lyr in before["layers"] if lyr["op_type"].startswith("MVAU"))
    words = sum(len(p.read_text().split()) for p in (tmp_path / "build" / "rtl").glob("*_weights.mem"))
    assert words < dense_words


def test_node_pruned_network_is_a_smaller_stock_design(digits_checkpoint, tmp_path) -> None:
    report = _prune(digits_checkpoint(1, 1), tmp_path, "--method", "node", "--sparsity", "0.5")
    model = load_onnx(step_model_path(tmp_path / "build", "estimate"))
    _, dims, _ = mvau_folding(tmp_path / "build")
    assert [mh for mh, _ in dims[:-1]] == [32, 32, 32] and [mw for _, mw in dims[1:]] == [32, 32, 32]
    assert report["pruned"]["layers"][0]["rows"] == 32
    spec = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["spec"]
    assert dims[0][1] == len(spec["inputs"] or range(64))  # the accelerator reads the pixels the network keeps
    assert not any("sparse" in str(n.op_type) for n in model.graph.node)
    sim = simulate(SimConfig(build_dir=tmp_path / "build", cppsim=False))
    _check(sim, tmp_path / "build")
    modules = {
        layer["module"] for layer in json.loads((tmp_path / "build" / "rtl" / "manifest.json").read_text())["layers"]
    }
    assert "bnn_mvau_sparse" not in modules


@pytest.mark.slow
def test_unstructured_pruning_saves_no_cycle(digits_checkpoint, tmp_path) -> None:
    report = _prune(digits_checkpoint(1, 2), tmp_path, "--method", "unstructured", "--sparsity", "0.6")
    assert report["pruned"]["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert report["pruned_cycles"] == report["unpruned_cycles"]
    sim = simulate(SimConfig(build_dir=tmp_path / "build", cppsim=False))
    _check(sim, tmp_path / "build")


def test_sparse_convolutions_follow_the_hardware_column_order(real_images, tmp_path) -> None:
    """Random tile masks on a CNN, placed by the training side's (kh, kw, c) / (h, w, c) column orders, are the
    all-zero tiles of the built MVAUs, and the sparse conv layers (many vectors per frame) stay bit-exact."""
    torch.manual_seed(5)
    spec = ModelSpec("cnn", 1, 1, 8, (1, 12, 12), 10, conv=(ConvLayer(8, 3), ConvLayer(8, 3, pool=True)), fc=(16,))
    model = build_model(spec)
    randomize_batchnorm(model, seed=5)
    images = real_images(6, (1, 12, 12))
    data = Dataset("real", images, np.zeros(6, np.int64), images, np.zeros(6, np.int64))
    build_dir, expected = tile_pruned_build(model, data, tmp_path, 400, keep=0.5, seed=5)
    graph = load_onnx(step_model_path(build_dir, "estimate"))
    from qonnx.custom_op.registry import getCustomOp

    built = []
    for node in graph.graph.node:
        if node.op_type.startswith("MVAU"):
            inst = getCustomOp(node)
            w = graph.get_initializer(node.input[1]).T
            built.append(kept_tiles(w, inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")))
    assert len(built) == len(expected)
    for got, want in zip(built, expected, strict=True):
        assert np.array_equal(got, want)
    _check(simulate(SimConfig(build_dir=build_dir, cppsim=False)), build_dir)
