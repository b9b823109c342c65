"""Pruning passes: masks survive training, checkpoints and export; shapes shrink; tile pruning reaches its cycle
target slowest layer first; bad requests are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brevitas.nn import QuantLinear

from bnnflow.artifacts import load_onnx
from bnnflow.errors import BnnflowError
from bnnflow.tiles import kept_tiles, vector_cycles
from bnnflow.training.config import TrainConfig
from bnnflow.training.data import load_dataset
from bnnflow.training.export import export
from bnnflow.training.models import ModelSpec, build_model, randomize_batchnorm
from bnnflow.training.prune import (
    PruneConfig,
    PruneMethod,
    compact,
    current_mask,
    effective_weight,
    layer_cycles,
    prunable_layers,
    prune_tiles_to,
    run_pruning,
    set_mask,
    sparsity_report,
    tile_targets,
)
from bnnflow.training.quant import WeightQuant
from bnnflow.training.train import model_from_checkpoint, run_epoch, save_checkpoint

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`


def _mlp(wbits: int = 1, abits: int = 1, fc: tuple[int, ...] = (32, 32), seed: int = 0):
    torch.manual_seed(seed)
    spec = ModelSpec("mlp", wbits, abits, 1, (1, 8, 8), 10, fc=fc)
    model = build_model(spec)
    randomize_batchnorm(model, seed)
    return model.eval()


def _cnn(seed: int = 0):
    from bnnflow.training.models import ConvLayer

    torch.manual_seed(seed)
    spec = ModelSpec("cnn", 1, 1, 8, (1, 8, 8), 10, conv=(ConvLayer(8, 3), ConvLayer(8, 3, pool=True)), fc=(16,))
    model = build_model(spec)
    randomize_batchnorm(model, seed)
    return model.eval()


def _x(n: int = 16, seed: int = 0, shape: tuple[int, ...] = (64,)) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, size=(n, *shape)).astype(np.float32))


def _random_tiles(model, folding, keep: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer, (pe, simd) in zip(prunable_layers(model), folding, strict=True):
        kept = rng.random((layer.rows // pe, layer.cols // simd)) < keep
        kept[np.arange(len(kept)), rng.integers(0, kept.shape[1], len(kept))] = True  # every row fold keeps one
        mask = np.repeat(np.repeat(kept, pe, 0), simd, 1).astype(np.float32)
        set_mask(layer.module, layer.tensor(mask))


def test_brevitas_binarizes_zero_to_plus_one_so_the_mask_goes_after_the_quantizer() -> None:
    plain = QuantLinear(4, 2, bias=False, weight_quant=WeightQuant, weight_bit_width=1)
    with torch.no_grad():
        plain.weight.zero_()
    assert torch.all(plain.quant_weight().value == 1.0)  # why a latent-weight mask is not enough
    model = _mlp()
    layer = prunable_layers(model)[0]
    mask = torch.ones_like(layer.module.weight)
    mask[:, :8] = 0
    set_mask(layer.module, mask)
    eff = effective_weight(layer.module)
    assert torch.all(eff[:, :8] == 0) and torch.all(eff[:, 8:].abs() == 1)
    # The forward pass computes with exactly these weights.
    x = torch.sign(torch.randn(3, 64))
    assert torch.equal(layer.module(x), x @ eff.T)


def test_masks_are_honoured_through_training_and_checkpoints(tmp_path) -> None:
    model = _mlp()
    folding = [(8, 16), (8, 8), (10, 8)]
    _random_tiles(model, folding, 0.5, seed=1)
    before = [current_mask(layer.module).clone() for layer in prunable_layers(model)]
    latent = [layer.module.weight_orig.detach().clone() for layer in prunable_layers(model)]
    data = load_dataset("digits")
    cfg = TrainConfig(dataset="digits", epochs=1, batch_size=64, progress=False, out_dir=tmp_path)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    run_epoch(model, optimizer, data, cfg, 0, lambda _p: 0.05)
    model.eval()
    for layer, mask, old in zip(prunable_layers(model), before, latent, strict=True):
        assert torch.equal(current_mask(layer.module), mask)
        assert torch.all(effective_weight(layer.module)[mask == 0] == 0)
        new = layer.module.weight_orig.detach()
        assert torch.equal(new[mask == 0], old[mask == 0])  # no gradient reached the pruned weights
        assert not torch.equal(new[mask == 1], old[mask == 1])  # the others did train
    save_checkpoint(tmp_path / "checkpoint.pt", model, optimizer, model.spec, cfg, 1, [])
    again, _ = model_from_checkpoint(tmp_path / "checkpoint.pt")
    x = _x()
    assert torch.equal(again(x), model(x))
    assert sparsity_report(again)["kept"] == sparsity_report(model)["kept"]


@pytest.mark.parametrize("wbits", [1, 2])
def test_export_carries_the_masks_into_qonnx(tmp_path, wbits) -> None:
    model = _mlp(wbits=wbits, abits=wbits)
    _random_tiles(model, [(8, 16), (8, 8), (10, 8)], 0.4, seed=2)
    data = load_dataset("digits")
    result = export(model, data, tmp_path, golden_samples=16)
    assert result.check.ok  # qonnx' execution of the file equals PyTorch's masked network
    onnx_model = load_onnx(result.model_path)
    quants = [n for n in onnx_model.graph.node if n.op_type in ("Quant", "BipolarQuant")
              and onnx_model.get_initializer(n.input[0]) is not None]  # fmt: skip
    assert [n.op_type for n in quants] == ["Quant"] * 3  # 1-bit weights with zeros need the ternary grid
    for layer, node in zip(prunable_layers(model), quants, strict=True):
        w = onnx_model.get_initializer(node.input[0])
        eff = effective_weight(layer.module).numpy()
        assert np.array_equal(w if w.shape == eff.shape else w.T, eff)


def test_tile_pruning_reaches_its_target_slowest_layer_first() -> None:
    model = _mlp(fc=(32, 32))
    layers = prunable_layers(model)
    folding = [(4, 8), (8, 8), (10, 4)]  # cycles: 8*8=64, 4*4=16, 1*8=8
    assert [layer_cycles(lyr, np.ones((lyr.rows // pe, lyr.cols // simd), bool))
            for lyr, (pe, simd) in zip(layers, folding, strict=True)] == [64, 16, 8]  # fmt: skip
    activity = {layer.name: np.ones(layer.cols) for layer in layers}
    changed = [prune_tiles_to(lyr, f, 20, activity[lyr.name]) for lyr, f in zip(layers, folding, strict=True)]
    assert changed == [True, False, False]  # only the slowest layer sets the II
    kept = kept_tiles(layers[0].matrix(current_mask(layers[0].module)), 4, 8)
    assert vector_cycles(kept) <= 20 and vector_cycles(kept) >= 19
    assert bool((current_mask(layers[1].module) == 1).all())
    assert tile_targets(64, 20, 3) == [44, 30, 20]


def test_tile_scores_prefer_columns_that_carry_information() -> None:
    model = _mlp(fc=(32, 16))
    layer = prunable_layers(model)[0]
    activity = np.ones(64)
    activity[:16] = 0.0  # a blank border: these pixels never change
    prune_tiles_to(layer, (16, 16), 6, activity)
    kept = kept_tiles(layer.matrix(current_mask(layer.module)), 16, 16)
    assert kept.tolist() == [[False, True, True, True]] * 2
    # Below its floor (SF = 4 input words per vector) a layer is not pruned further.
    prune_tiles_to(layer, (16, 16), 1, activity)
    assert layer_cycles(layer, kept_tiles(layer.matrix(current_mask(layer.module)), 16, 16)) == 4


def test_node_pruning_shrinks_the_network_and_keeps_its_function(tmp_path) -> None:
    model = _mlp(fc=(32, 24))
    folding = [(4, 8), (4, 4), (10, 4)]
    data = load_dataset("digits")
    cfg = PruneConfig(method=PruneMethod.NODE, sparsity=0.5, steps=2, epochs_per_step=0, finetune_epochs=0)
    x = data.train_x[:64].reshape(64, -1).astype(np.float32)
    small, _ = run_pruning(model, cfg, lambda *_: 0.0, x, folding)
    assert small.spec.fc == (16, 12)  # whole groups of lcm(PE, next SIMD) = 4 neurons
    layers = prunable_layers(small)
    # The digits' blank pixels go too, a whole SIMD group of them (8): the network reads 56 of the 64.
    assert [(lyr.rows, lyr.cols) for lyr in layers] == [(16, 56), (12, 16), (10, 12)]
    dropped = sorted(set(range(64)) - set(small.spec.inputs))
    assert len(small.spec.inputs) == 56 and np.all(x[:, dropped] == x[:1, dropped])  # they never change
    assert small.example_input().shape == (1, 56)
    assert small(torch.from_numpy(x[:4])).shape == (4, 10)  # whole images in, the pixels it reads selected
    for lyr, (pe, simd) in zip(layers, folding, strict=True):
        assert lyr.rows % pe == 0 and lyr.cols % simd == 0  # the same folding still divides
    assert not any(hasattr(lyr.module, "weight_mask") for lyr in layers)  # removed, not masked


def test_compact_equals_the_masked_network() -> None:
    model = _mlp(fc=(32, 24))
    layers = prunable_layers(model)
    for i, drop in ((0, [1, 5, 6, 30]), (1, [0, 23])):
        rows = layers[i].matrix(current_mask(layers[i].module))
        rows[drop, :] = 0
        set_mask(layers[i].module, layers[i].tensor(rows))
        cols = layers[i + 1].matrix(current_mask(layers[i + 1].module))
        cols[:, drop] = 0
        set_mask(layers[i + 1].module, layers[i + 1].tensor(cols))
    small = compact(model)
    assert small.spec.fc == (28, 22)
    x = _x(64)
    assert torch.equal(small(x), model(x))


def test_cnn_columns_follow_the_hardware_order() -> None:
    model = _cnn()
    layers = prunable_layers(model)
    assert [(lyr.name, lyr.rows, lyr.cols, lyr.vectors) for lyr in layers] == [
        ("conv0", 8, 9, 36), ("conv1", 8, 72, 16), ("fc0", 16, 32, 1), ("fc1", 10, 16, 1)
    ]  # fmt: skip
    conv1 = layers[1]
    w = conv1.module.weight.detach()
    m = conv1.matrix(w)
    # im2col column (kh, kw, c) reads weight[:, c, kh, kw]
    assert torch.equal(torch.from_numpy(m[:, (1 * 3 + 2) * 8 + 5]), w[:, 5, 1, 2])
    assert torch.equal(conv1.tensor(m), w)
    fc0 = layers[2]  # reads the 8 x 2 x 2 map in (h, w, c) order
    assert torch.equal(torch.from_numpy(fc0.matrix(fc0.module.weight)[:, (1 * 2 + 0) * 8 + 3]),
                       fc0.module.weight.detach()[:, 3 * 4 + 1 * 2 + 0])  # fmt: skip


def test_unstructured_pruning_reaches_the_sparsity() -> None:
    model = _mlp()
    cfg = PruneConfig(method=PruneMethod.UNSTRUCTURED, sparsity=0.7, steps=3, epochs_per_step=0, finetune_epochs=0)
    pruned, history = run_pruning(model, cfg, lambda *_: 0.0, _x().numpy())
    report = sparsity_report(pruned)
    for row in report["layers"]:
        assert row["kept"] == row["weights"] - round(0.7 * row["weights"])
    assert [round(h.sparsity, 2) for h in history] == [0.23, 0.47, 0.7]


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"method": "unstructured", "sparsity": 1.0}, "outside [0, 1)"),
        ({"method": "node", "sparsity": -0.1}, "outside [0, 1)"),
        ({"method": "tile"}, "needs a target"),
        ({"method": "tile", "speedup": 0.5}, "below 1"),
        ({"method": "unstructured"}, "needs --sparsity"),
        ({"method": "pruning"}, "invalid pruning option"),
        ({"method": "tile", "speedup": 2, "bogus": 1}, "unknown pruning option"),
    ],
)
def test_bad_pruning_configs_are_one_line(cfg, message) -> None:
    with pytest.raises(BnnflowError, match=message.replace("[", r"\[").replace(")", r"\)")) as err:
        PruneConfig.from_mapping(cfg)
    assert "\n" not in str(err.value)


def test_unknown_layer_and_unreachable_target_are_one_line() -> None:
    model = _mlp()
    folding = [(8, 16), (8, 8), (10, 8)]
    cfg = PruneConfig.from_mapping({"method": "tile", "speedup": 2, "layers": ["fc0", "fc7"]})
    with pytest.raises(BnnflowError, match=r"fc7.*its layers are fc0, fc1, fc2"):
        run_pruning(model, cfg, lambda *_: 0.0, _x().numpy(), folding)
    cfg = PruneConfig.from_mapping({"method": "unstructured", "sparsity": 0.5, "layer_sparsity": {"conv3": 0.2}})
    with pytest.raises(BnnflowError, match="conv3"):
        run_pruning(model, cfg, lambda *_: 0.0, _x().numpy(), folding)
    cfg = PruneConfig.from_mapping({"method": "tile", "target_cycles": 3})
    with pytest.raises(BnnflowError, match="no tile pruning reaches 3 cycles") as err:
        run_pruning(model, cfg, lambda *_: 0.0, _x().numpy(), folding)
    assert "\n" not in str(err.value)
    with pytest.raises(BnnflowError, match="folding has 2 matrix-vector layers"):
        run_pruning(model, PruneConfig(speedup=2), lambda *_: 0.0, _x().numpy(), folding[:2])
    with pytest.raises(BnnflowError, match="PE=3 must divide"):
        run_pruning(model, PruneConfig(speedup=2), lambda *_: 0.0, _x().numpy(), [(3, 16), (8, 8), (10, 8)])


def test_taylor_saliency_ranks_by_loss_change() -> None:
    from bnnflow.training.prune import taylor_saliency

    model = _mlp(fc=(32, 16))
    layers = prunable_layers(model)
    data = load_dataset("digits")
    x = data.train_x[:500].reshape(500, -1).astype(np.float32)
    sal = taylor_saliency(model, layers, x, data.train_y[:500], torch.nn.functional.cross_entropy)
    assert [sal[lyr.name].shape for lyr in layers] == [(32, 64), (16, 32), (10, 16)]
    assert all(np.all(s >= 0) and s.sum() > 0 for s in sal.values())
    assert all(lyr.module.weight_orig.grad is None if hasattr(lyr.module, "weight_orig") else
               lyr.module.weight.grad is None for lyr in layers)  # fmt: skip
    scores = np.zeros((32, 64))
    scores[:, 16:32] = 1.0  # only the second column fold matters
    layer = layers[0]
    prune_tiles_to(layer, (16, 16), 5, np.ones(64), scores)
    kept = kept_tiles(layer.matrix(current_mask(layer.module)), 16, 16)
    assert kept[:, 1].all() and kept.sum() == 5
