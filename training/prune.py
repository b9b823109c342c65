"""Hardware-aware pruning (Scalpel, ISCA 2017) of the zoo and user networks, with retraining between steps.

Three methods, one bookkeeping: every pruned layer carries torch.nn.utils.prune's `weight_mask`, which the
layers apply after their weight quantizer (models.MaskedQuantLinear), so a pruned 1-bit weight is 0, not +1.
- tile: whole PE x SIMD fold tiles of the target folding, ranked by group RMS times input activity, the slowest
  layers first (a frame takes as many cycles as the slowest layer); the hardware skips the empty tiles.
- node: whole neurons or channels, ranked by how much they move the next layer; the network is then rebuilt
  smaller (`compact`), so a stock build gets fewer cycles and resources.
- unstructured: Deep-Compression-style weight magnitude pruning, the baseline that a dataflow accelerator cannot
  turn into fewer cycles.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantLinear
from torch import nn
from torch.nn.utils import prune

from bnnflow.errors import BnnflowError
from bnnflow.tiles import check_fold, kept_tiles, tile_mask, tile_view, vector_cycles
from bnnflow.training.data import Dataset
from bnnflow.training.models import BNN, ConvLayer, TensorNorm, build_model


class Criterion(StrEnum):
    """How tiles are ranked for tile pruning."""

    RMS = "rms"  # Scalpel: group RMS of the latent weights, times the RMS activity of the tile's inputs
    TAYLOR = "taylor"  # first-order loss change of removing the tile: sum of |dL/dw * w| over training batches


class PruneMethod(StrEnum):
    """What is removed."""

    TILE = "tile"  # whole PE x SIMD fold tiles of the target folding
    NODE = "node"  # whole neurons / channels; the exported network is smaller
    UNSTRUCTURED = "unstructured"  # single weights by magnitude (baseline)


@dataclass
class PruneConfig:
    """Pruning of a trained network: the method, its target and the retraining schedule."""

    method: PruneMethod = PruneMethod.TILE
    """tile, node or unstructured."""
    speedup: float | None = None
    """tile: reach the unpruned network's cycles per frame divided by this."""
    target_cycles: int | None = None
    """tile: cycles per frame to reach; overrides speedup."""
    sparsity: float | None = None
    """node: fraction of each hidden layer's neurons removed; unstructured: fraction of each layer's weights."""
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    """unstructured/node: per-layer fraction, overriding `sparsity` (layer names: conv0.., fc0..)."""
    layers: tuple[str, ...] = ()
    """Only these layers may be pruned (empty: every layer)."""
    steps: int = 4
    """Pruning steps; the target is approached geometrically (tile) or linearly (sparsity)."""
    epochs_per_step: int = 2
    """Retraining epochs after each step."""
    finetune_epochs: int = 4
    """Retraining epochs after the last step (cosine decay to 0)."""
    lr: float = 0.005
    """Learning rate of the retraining."""
    criterion: Criterion = Criterion.RMS
    """tile: rms (Scalpel's group RMS times input activity) or taylor (first-order loss change)."""
    inputs: bool = True
    """node, MLPs: also drop the input pixels that never change over the training data (MNIST's blank border),
    in groups of the first layer's SIMD; the exported network then reads only the others."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["method"] = self.method.value
        out["criterion"] = self.criterion.value
        out["layers"] = list(self.layers)
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PruneConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise BnnflowError(f"unknown pruning option(s) {unknown}; allowed: {sorted(fields)}")
        try:
            cfg = cls(**{k: v for k, v in data.items() if v is not None})
            cfg.method = PruneMethod(cfg.method)
            cfg.criterion = Criterion(cfg.criterion)
            cfg.layers = tuple(str(n) for n in cfg.layers)
            cfg.layer_sparsity = {str(k): float(v) for k, v in dict(cfg.layer_sparsity).items()}
        except ValueError as exc:
            raise BnnflowError(f"invalid pruning option: {exc}") from exc
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name, value in [("sparsity", self.sparsity), *self.layer_sparsity.items()]:
            if value is not None and not 0.0 <= value < 1.0:
                raise BnnflowError(f"pruning sparsity {name}={value} is outside [0, 1); give a fraction such as 0.5")
        if self.method is PruneMethod.TILE:
            if self.target_cycles is None and self.speedup is None:
                raise BnnflowError("tile pruning needs a target: --speedup X or --target-cycles N")
            if self.speedup is not None and self.speedup < 1.0:
                raise BnnflowError(f"pruning speedup {self.speedup} is below 1; give a factor such as 3")
            if self.target_cycles is not None and self.target_cycles < 1:
                raise BnnflowError(f"pruning target_cycles {self.target_cycles} must be at least 1")
        elif self.sparsity is None and not self.layer_sparsity:
            raise BnnflowError(f"{self.method.value} pruning needs --sparsity (a fraction in [0, 1))")
        if self.steps < 1 or self.epochs_per_step < 0 or self.finetune_epochs < 0 or self.lr <= 0:
            raise BnnflowError("pruning needs steps >= 1, epochs_per_step >= 0, finetune_epochs >= 0 and lr > 0")


# ------------------------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class PrunableLayer:
    """A weight layer as the hardware sees it: an (MH, MW) matrix with columns in the hardware's order."""

    name: str
    module: QuantLinear | QuantConv2d
    rows: int
    cols: int
    order: np.ndarray  # hardware column j -> column of module.weight.reshape(rows, -1)
    channel_of_col: np.ndarray  # hardware column j -> input channel (FC: input feature) it reads
    vectors: int  # matrix-vector products per frame (a convolution's output pixels)

    def matrix(self, tensor: torch.Tensor) -> np.ndarray:
        """A weight-shaped tensor as the (MH, MW) hardware matrix."""
        return np.asarray(tensor.detach().cpu().reshape(self.rows, -1).numpy())[:, self.order]

    def tensor(self, matrix: np.ndarray) -> torch.Tensor:
        """The inverse of `matrix`: an (MH, MW) hardware matrix as a weight-shaped tensor."""
        flat = np.empty_like(matrix)
        flat[:, self.order] = matrix
        return torch.from_numpy(np.ascontiguousarray(flat)).reshape(self.module.weight.shape)


def prunable_layers(model: BNN) -> list[PrunableLayer]:
    """The weight layers of a BNN in order, named conv0.. and fc0.. (the classifier is the last fc).

    Column orders follow FINN's lowering: a convolution's im2col columns are (kh, kw, c), and the first FC after
    the convolutions reads the feature map in (h, w, c) order.
    """
    spec = model.spec
    c, h, w = spec.input_shape
    convs = [m for m in model.conv if isinstance(m, QuantConv2d)]
    fcs = [m for m in model.fc if isinstance(m, QuantLinear)]
    layers = []
    for i, (layer, module) in enumerate(zip(spec.conv, convs, strict=True)):
        k = layer.kernel
        kh, kw, ch = np.meshgrid(np.arange(k), np.arange(k), np.arange(c), indexing="ij")
        order = (ch * k * k + kh * k + kw).reshape(-1)
        h, w = h - k + 1, w - k + 1
        layers.append(PrunableLayer(f"conv{i}", module, layer.channels, k * k * c, order, ch.reshape(-1), h * w))
        c = layer.channels
        if layer.pool:
            h, w = h // 2, w // 2
    if spec.conv:
        hh, ww, ch = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
        order, channels = (ch * h * w + hh * w + ww).reshape(-1), ch.reshape(-1)
    else:
        order = channels = np.arange(fcs[0].in_features)
    for i, module in enumerate(fcs):
        layers.append(PrunableLayer(f"fc{i}", module, module.out_features, module.in_features, order, channels, 1))
        order = channels = np.arange(module.out_features)
    return layers


def check_layers(model: BNN, cfg: PruneConfig) -> list[PrunableLayer]:
    """The layers `cfg` may prune; a name the network does not have is a one-line error."""
    layers = prunable_layers(model)
    unknown = tuple(sorted(set(cfg.layer_sparsity) - {layer.name for layer in layers}))
    if unknown:
        select_layers(layers, unknown)
    return select_layers(layers, cfg.layers)


def select_layers(layers: list[PrunableLayer], names: tuple[str, ...]) -> list[PrunableLayer]:
    known = [layer.name for layer in layers]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BnnflowError(f"pruning config names layer(s) {', '.join(unknown)} that the network does not have; "
                           f"its layers are {', '.join(known)}")  # fmt: skip
    return [layer for layer in layers if not names or layer.name in names]


# ------------------------------------------------------------------------------------------------ masks
def _weight(module: nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, module.weight)


def current_mask(module: nn.Module) -> torch.Tensor:
    mask = getattr(module, "weight_mask", None)
    return mask if mask is not None else torch.ones_like(_weight(module))


def set_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Install `mask` as the layer's torch pruning mask (replacing an earlier one)."""
    if prune.is_pruned(module) and hasattr(module, "weight_mask"):
        prune.remove(module, "weight")
    weight = _weight(module)
    prune.custom_from_mask(module, "weight", mask.to(weight.device, dtype=weight.dtype))


def masks_in_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Module name -> mask, for the pruning masks a state dict carries."""
    suffix = ".weight_mask"
    return {k[: -len(suffix)]: v for k, v in state.items() if k.endswith(suffix)}


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        if name not in modules:
            raise BnnflowError(f"checkpoint has a pruning mask for '{name}', which the network does not have")
        set_mask(modules[name], mask)


def is_masked(model: nn.Module) -> bool:
    return any(hasattr(m, "weight_mask") for m in model.modules())


def without_masks(model: BNN) -> BNN:
    """A copy whose masks are folded into plain latent weights (torch's prune.remove), as Brevitas exports
    them; the masks' effect after the quantizer is restored by masked_weights_to_qonnx."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".weight_mask"):
            continue
        if key.endswith(".weight_orig"):
            base = key[: -len("_orig")]
            state[base] = value * model.state_dict()[base + "_mask"]
        else:
            state[key] = value
    plain = build_model(model.spec)
    plain.load_state_dict(state)
    return plain.eval()


def effective_weight(module: QuantLinear | QuantConv2d) -> torch.Tensor:
    """The weights the layer computes with: quantized, then masked."""
    with torch.no_grad():
        return (module.quant_weight().value * current_mask(module)).detach()


def latent_weight(module: nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, getattr(module, "weight_orig", module.weight)).detach() * current_mask(module)


# ------------------------------------------------------------------------------------------------ criteria
@torch.no_grad()
def input_activity(model: BNN, layers: list[PrunableLayer], x: np.ndarray) -> dict[str, np.ndarray]:
    """Per layer, the standard deviation of each hardware input column over a batch of training inputs.

    A column that never changes (MNIST's blank border, a neuron stuck at one value) carries no information.
    """
    stds: dict[str, np.ndarray] = {}
    hooks = []
    for layer in layers:

        def hook(_m: nn.Module, args: tuple[Any, ...], layer: PrunableLayer = layer) -> None:
            inp = args[0]
            inp = getattr(inp, "value", inp)
            per_channel = inp.transpose(0, 1).reshape(inp.shape[1], -1).float().std(dim=1).cpu().numpy()
            stds[layer.name] = per_channel[layer.channel_of_col]

        hooks.append(layer.module.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.from_numpy(x).float().to(next(model.parameters()).device))
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    return stds


def tile_scores(layer: PrunableLayer, activity: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """(NF, SF) group RMS of the latent weights (Scalpel's criterion) times the RMS activity of the tile's inputs."""
    weights = tile_view(layer.matrix(latent_weight(layer.module)), pe, simd)
    rms = np.sqrt((weights.astype(np.float64) ** 2).mean(axis=(2, 3)))
    act = np.sqrt((activity.astype(np.float64) ** 2).reshape(-1, simd).mean(axis=1))
    return np.asarray(rms * (act[None, :] + 1e-12))


def taylor_saliency(
    model: BNN, layers: list[PrunableLayer], x: np.ndarray, y: np.ndarray, loss: Callable[..., torch.Tensor]
) -> dict[str, np.ndarray]:
    """Per layer, sum over batches of |dL/dw * w| for the effective weights, as (MH, MW) hardware matrices: the
    first-order change of the loss when a weight is removed (gradients through Brevitas' straight-through
    estimator)."""
    was_training = model.training
    model.eval()  # BatchNorm statistics and dropout as deployed
    device = next(model.parameters()).device
    params = [cast(torch.Tensor, getattr(layer.module, "weight_orig", layer.module.weight)) for layer in layers]
    sums = {layer.name: np.zeros((layer.rows, layer.cols)) for layer in layers}
    try:
        for start in range(0, len(x), 250):
            model.zero_grad(set_to_none=True)
            out = model(torch.from_numpy(x[start : start + 250]).float().to(device))
            loss(out, torch.from_numpy(y[start : start + 250]).to(device)).backward()
            for layer, param in zip(layers, params, strict=True):
                if param.grad is not None:
                    sums[layer.name] += np.abs(layer.matrix(param.grad * effective_weight(layer.module)))
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return sums


# ------------------------------------------------------------------------------------------------ tile pruning
def layer_cycles(layer: PrunableLayer, kept: np.ndarray) -> int:
    return layer.vectors * vector_cycles(kept)


def current_tiles(layer: PrunableLayer, pe: int, simd: int) -> np.ndarray:
    mask = layer.matrix(current_mask(layer.module))
    return np.asarray(tile_view(mask != 0, pe, simd).any(axis=(2, 3)))


def tile_floor(layer: PrunableLayer, pe: int, simd: int) -> int:
    """The fewest cycles per frame tile pruning can give the layer: one input word per column fold, and one
    step per row fold."""
    return layer.vectors * max(layer.cols // simd, layer.rows // pe)


def prune_tiles_to(
    layer: PrunableLayer,
    fold: tuple[int, int],
    target: int,
    activity: np.ndarray,
    saliency: np.ndarray | None = None,
) -> bool:
    """Remove the lowest-scoring kept tiles until the layer takes at most `target` cycles per frame. Scores are
    tile_scores (RMS), or the per-weight `saliency` (MH, MW) summed over each tile where given."""
    pe, simd = fold
    kept = current_tiles(layer, pe, simd)
    target = max(target, tile_floor(layer, pe, simd))  # below it, removing tiles saves no cycle
    if layer_cycles(layer, kept) <= target:
        return False
    if saliency is not None:
        scores = np.asarray(tile_view(saliency, pe, simd).sum(axis=(2, 3)))
    else:
        scores = tile_scores(layer, activity, pe, simd)
    order = sorted(zip(*np.nonzero(kept), strict=True), key=lambda ix: (scores[ix], ix))
    for ix in order:
        if kept[ix].sum() <= 0:
            continue
        kept[ix] = False
        if layer_cycles(layer, kept) <= target:
            break
    mask = layer.matrix(current_mask(layer.module)) * tile_mask(kept, pe, simd)
    set_mask(layer.module, layer.tensor(mask.astype(np.float32)))
    return True


# ------------------------------------------------------------------------------------------------ node pruning
def node_unit(layers: list[PrunableLayer], i: int, folding: list[tuple[int, int]] | None) -> int:
    """Neurons of layer i are removed in groups that keep its PE and the next layer's SIMD dividing."""
    if folding is None:
        return 1
    pe = folding[i][0]
    nxt = layers[i + 1]
    simd = folding[i + 1][1]
    per_channel = nxt.cols // layers[i].rows  # columns of the next layer that read one channel
    need = simd // math.gcd(simd, per_channel)
    return math.lcm(pe, need)


def prune_nodes_to(
    layers: list[PrunableLayer], i: int, fraction: float, unit: int, activity: dict[str, np.ndarray]
) -> None:
    """Mask the least important neurons of layer i (and the next layer's columns that read them)."""
    layer, nxt = layers[i], layers[i + 1]
    rows_alive = np.nonzero(layer.matrix(current_mask(layer.module)).any(axis=1))[0]
    remove = (round(fraction * layer.rows) // unit) * unit
    remove = min(remove, layer.rows - unit)
    already = layer.rows - len(rows_alive)
    if remove <= already:
        return
    w_next = np.abs(nxt.matrix(latent_weight(nxt.module)))
    influence = np.zeros(layer.rows)
    np.add.at(influence, nxt.channel_of_col, w_next.sum(axis=0))
    spread = np.zeros(layer.rows)
    np.maximum.at(spread, nxt.channel_of_col, activity[nxt.name])
    score = influence * (spread + 1e-12)
    drop = sorted(rows_alive, key=lambda r: (score[r], r))[: remove - already]
    row_mask = layer.matrix(current_mask(layer.module))
    row_mask[drop, :] = 0
    set_mask(layer.module, layer.tensor(row_mask.astype(np.float32)))
    col_mask = nxt.matrix(current_mask(nxt.module))
    col_mask[:, np.isin(nxt.channel_of_col, drop)] = 0
    set_mask(nxt.module, nxt.tensor(col_mask.astype(np.float32)))


def drop_constant_inputs(layer: PrunableLayer, activity: np.ndarray, unit: int) -> int:
    """Mask the first layer's columns whose input never changed (activity 0), as many as whole groups of `unit`
    allow, the least influential first; returns how many."""
    mask = layer.matrix(current_mask(layer.module))
    alive = mask.any(axis=0)
    constant = np.nonzero((activity == 0) & alive)[0]
    count = (len(constant) // unit) * unit
    if count == 0:
        return 0
    influence = np.abs(layer.matrix(latent_weight(layer.module))).sum(axis=0)
    drop = sorted(constant, key=lambda c: (influence[c], c))[:count]
    mask[:, drop] = 0
    set_mask(layer.module, layer.tensor(mask.astype(np.float32)))
    return count


def alive_rows(layer: PrunableLayer) -> np.ndarray:
    return np.asarray(layer.matrix(current_mask(layer.module)).any(axis=1))


@torch.no_grad()
def compact(model: BNN) -> BNN:
    """The same network with every fully pruned neuron/channel removed: a smaller spec, sliced weights,
    BatchNorm statistics and masks. Its outputs equal the masked network's."""
    layers = prunable_layers(model)
    keep = [np.nonzero(alive_rows(layer))[0] for layer in layers[:-1]]
    spec = model.spec
    n_conv = len(spec.conv)
    conv = tuple(ConvLayer(len(keep[i]), layer.kernel, layer.pool) for i, layer in enumerate(spec.conv))
    fc = tuple(len(keep[n_conv + i]) for i in range(len(spec.fc)))
    first_cols: np.ndarray = np.ones(layers[0].cols, dtype=bool)
    inputs = spec.inputs
    if not spec.is_cnn:  # input pixels dropped by node pruning
        first_cols = np.asarray(layers[0].matrix(current_mask(layers[0].module)).any(axis=0))
        every = np.asarray(spec.inputs) if spec.inputs else np.arange(layers[0].cols)
        inputs = tuple(int(i) for i in every[first_cols]) if not first_cols.all() else spec.inputs
    small = build_model(dataclasses.replace(spec, conv=conv, fc=fc, inputs=inputs))
    small.to(next(model.parameters()).device)
    new_layers = prunable_layers(small)
    for i, (old, new) in enumerate(zip(layers, new_layers, strict=True)):
        rows = keep[i] if i < len(keep) else np.arange(old.rows)
        cols_keep = np.isin(old.channel_of_col, keep[i - 1]) if i > 0 else first_cols
        w = old.matrix(latent_weight(old.module))[np.ix_(rows, np.nonzero(cols_keep)[0])]
        m = old.matrix(current_mask(old.module))[np.ix_(rows, np.nonzero(cols_keep)[0])]
        target = getattr(new.module, "weight_orig", new.module.weight)
        target.copy_(new.tensor(w.astype(np.float32)))
        if not m.all():
            set_mask(new.module, new.tensor(m.astype(np.float32)))
    old_bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    new_bns = [m for m in small.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    for i, (old_bn, new_bn) in enumerate(zip(old_bns, new_bns, strict=True)):
        idx = torch.from_numpy(keep[i])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new_bn, name).copy_(getattr(old_bn, name)[idx])
    for old_tn, new_tn in zip(
        [m for m in model.modules() if isinstance(m, TensorNorm)],
        [m for m in small.modules() if isinstance(m, TensorNorm)],
        strict=True,
    ):
        new_tn.load_state_dict(old_tn.state_dict())
    small.eval()
    return small


# ------------------------------------------------------------------------------------------------ reporting
def sparsity_report(model: BNN, folding: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """Per layer: shape, weights kept, and with a folding the tiles kept and cycles per frame."""
    out = []
    total = kept_total = 0
    for i, layer in enumerate(prunable_layers(model)):
        mask = layer.matrix(current_mask(layer.module)) != 0
        row: dict[str, Any] = {"layer": layer.name, "rows": layer.rows, "cols": layer.cols,
                               "weights": int(mask.size), "kept": int(mask.sum())}  # fmt: skip
        total += mask.size
        kept_total += int(mask.sum())
        if folding is not None:
            pe, simd = folding[i]
            check_fold(layer.rows, layer.cols, pe, simd, f"layer {layer.name}")
            tiles = kept_tiles(mask, pe, simd)
            row.update({"PE": pe, "SIMD": simd, "tiles": int(tiles.size), "tiles_kept": int(tiles.sum()),
                        "cycles": layer_cycles(layer, tiles)})  # fmt: skip
        out.append(row)
    return {"layers": out, "weights": total, "kept": kept_total, "sparsity": 1.0 - kept_total / max(1, total)}


def check_folding(model: BNN, folding: list[tuple[int, int]]) -> None:
    layers = prunable_layers(model)
    if len(folding) != len(layers):
        raise BnnflowError(
            f"the folding has {len(folding)} matrix-vector layers but the network has {len(layers)} "
            f"({', '.join(layer.name for layer in layers)}); give the folding of a build of this network"
        )
    for layer, (pe, simd) in zip(layers, folding, strict=True):
        check_fold(layer.rows, layer.cols, pe, simd, f"layer {layer.name}")


# ------------------------------------------------------------------------------------------------ driver
@dataclass
class PruneStep:
    """One pruning step: what the target was and where the network stood after retraining."""

    step: int
    target: float
    sparsity: float
    cycles: int | None
    test_acc: float | None = None


Retrain = Callable[[BNN, int, str], float]  # (model, epochs, label) -> test accuracy


def tile_targets(dense: int, target: int, steps: int) -> list[int]:
    """Cycle targets of the steps: geometric from the unpruned II down to the goal."""
    return [max(target, math.ceil(dense * (target / dense) ** (i / steps))) for i in range(1, steps + 1)]


def network_cycles(model: BNN, folding: list[tuple[int, int]], floor: int = 0) -> int:
    report = sparsity_report(model, folding)
    return max([floor, *(layer["cycles"] for layer in report["layers"])])


def run_pruning(
    model: BNN,
    cfg: PruneConfig,
    retrain: Retrain,
    activity_inputs: np.ndarray,
    folding: list[tuple[int, int]] | None = None,
    floor_cycles: int = 0,
    log: Callable[[str], None] | None = None,
    saliency: Callable[[BNN, list[PrunableLayer]], dict[str, np.ndarray]] | None = None,
) -> tuple[BNN, list[PruneStep]]:
    """Prune `model` in `cfg.steps` steps with retraining; returns the pruned network and the history.

    folding: (PE, SIMD) of each matrix-vector layer, in order (tile pruning needs it; node pruning keeps it
    legal). floor_cycles: the slowest layer that pruning cannot speed up (sliding windows, pools).
    """
    cfg.validate()
    layers = prunable_layers(model)
    chosen = check_layers(model, cfg)
    if folding is not None:
        check_folding(model, folding)
    elif cfg.method is PruneMethod.TILE:
        raise BnnflowError("tile pruning needs the target folding (PE and SIMD of every layer)")
    history: list[PruneStep] = []
    say = log or (lambda _m: None)

    if cfg.method is PruneMethod.TILE:
        assert folding is not None
        index = {layer.name: i for i, layer in enumerate(layers)}
        dense = network_cycles(model, folding, floor_cycles)
        goal = cfg.target_cycles if cfg.target_cycles is not None else math.ceil(dense / float(cfg.speedup or 1.0))
        names = {layer.name for layer in chosen}
        reachable = max(
            [floor_cycles]
            + [tile_floor(layer, *folding[index[layer.name]]) for layer in chosen]
            + [
                layer_cycles(layer, current_tiles(layer, *folding[index[layer.name]]))
                for layer in layers
                if layer.name not in names
            ]
        )
        if goal < reachable:
            raise BnnflowError(
                f"no tile pruning reaches {goal} cycles per frame with this folding: the fastest it can get is "
                f"{reachable} (each layer needs one cycle per input word and per row fold); raise PE/SIMD of the "
                "slowest layers or ask for less speed-up"
            )
        for step, target in enumerate(tile_targets(dense, goal, cfg.steps), start=1):
            activity = input_activity(model, layers, activity_inputs)
            if cfg.criterion is Criterion.TAYLOR and saliency is None:
                raise BnnflowError("the taylor criterion needs training data with labels")
            ranks = saliency(model, layers) if cfg.criterion is Criterion.TAYLOR and saliency else {}
            for layer in chosen:
                prune_tiles_to(layer, folding[index[layer.name]], target, activity[layer.name], ranks.get(layer.name))
            cycles = network_cycles(model, folding, floor_cycles)
            say(f"prune step {step}/{cfg.steps}: {cycles} cycles per frame (target {target})")
            acc = retrain(model, cfg.epochs_per_step, f"step {step}") if cfg.epochs_per_step else None
            history.append(PruneStep(step, target, sparsity_report(model)["sparsity"], cycles, acc))
    else:
        fractions = {layer.name: cfg.layer_sparsity.get(layer.name, cfg.sparsity or 0.0) for layer in chosen}
        for step in range(1, cfg.steps + 1):
            share = step / cfg.steps
            if cfg.method is PruneMethod.UNSTRUCTURED:
                for layer in chosen:
                    _magnitude_prune(layer, fractions[layer.name] * share)
            else:
                activity = input_activity(model, layers, activity_inputs)
                if step == 1 and cfg.inputs and not model.spec.is_cnn:
                    drop_constant_inputs(layers[0], activity[layers[0].name], folding[0][1] if folding else 1)
                for i, layer in enumerate(layers[:-1]):
                    if layer.name in fractions:
                        unit = node_unit(layers, i, folding)
                        prune_nodes_to(layers, i, fractions[layer.name] * share, unit, activity)
            now = network_cycles(model, folding, floor_cycles) if folding is not None else None
            sparsity = sparsity_report(model)["sparsity"]
            say(f"prune step {step}/{cfg.steps}: sparsity {sparsity:.3f}")
            acc = retrain(model, cfg.epochs_per_step, f"step {step}") if cfg.epochs_per_step else None
            history.append(PruneStep(step, share, sparsity, now, acc))
    if cfg.finetune_epochs:
        acc = retrain(model, cfg.finetune_epochs, "fine-tune")
        last = network_cycles(model, folding, floor_cycles) if folding is not None else None
        history.append(PruneStep(cfg.steps + 1, 0.0, sparsity_report(model)["sparsity"], last, acc))
    if cfg.method is PruneMethod.NODE:
        model = compact(model)
    return model, history


def _magnitude_prune(layer: PrunableLayer, fraction: float) -> None:
    """Keep the largest-magnitude latent weights of the layer so that `fraction` of them are pruned."""
    mask = current_mask(layer.module)
    want = round(fraction * mask.numel())
    extra = want - int((mask == 0).sum())
    if extra <= 0:
        return
    # torch's l1_unstructured ranks the still-unpruned weights and stacks the new mask on the old one.
    prune.l1_unstructured(layer.module, "weight", amount=extra)


# ------------------------------------------------------------------------------------------------ export
def masked_weights_to_qonnx(wrapper: Any, model: BNN) -> Any:
    """Write the masked, quantized weights of a pruned BNN into its exported QONNX graph.

    Brevitas exports the latent weights and their quantizer, which would turn a pruned 1-bit weight back into
    +1. Each masked layer's weight quantizer input becomes the effective weights (quantized, pruned ones 0), and
    a 1-bit quantizer (BipolarQuant) becomes a narrow 2-bit Quant of the same scale, whose grid {-s, 0, +s}
    holds them. Layers and graph nodes are matched in order and checked by shape.
    """
    from onnx import helper

    layers = prunable_layers(model)
    weighted = []
    for node in wrapper.graph.node:
        if node.op_type not in ("MatMul", "Conv", "Gemm"):
            continue
        quant = wrapper.find_producer(node.input[1])
        if quant is None or quant.op_type not in ("Quant", "BipolarQuant"):
            continue
        if wrapper.get_initializer(quant.input[0]) is None:
            continue
        weighted.append((node, quant))
    if len(weighted) != len(layers):
        raise BnnflowError(
            f"the exported graph has {len(weighted)} quantized weight layers but the network {len(layers)}; "
            "cannot place the pruning masks"
        )
    for layer, (node, quant) in zip(layers, weighted, strict=True):
        if not hasattr(layer.module, "weight_mask"):
            continue
        eff = effective_weight(layer.module).cpu().numpy().astype(np.float32)
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        if node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b):
            eff = eff.T
        current = wrapper.get_initializer(quant.input[0])
        if tuple(current.shape) != tuple(eff.shape):
            raise BnnflowError(
                f"exported weights of {node.name} have shape {tuple(current.shape)}, layer {layer.name} "
                f"{tuple(eff.shape)}; cannot place the pruning mask"
            )
        wrapper.set_initializer(quant.input[0], np.ascontiguousarray(eff))
        if quant.op_type == "BipolarQuant":
            zero, bits = f"{quant.name}_zeropt", f"{quant.name}_bitwidth"
            wrapper.set_initializer(zero, np.array(0.0, dtype=np.float32))
            wrapper.set_initializer(bits, np.array(2.0, dtype=np.float32))
            ternary = helper.make_node(
                "Quant",
                [quant.input[0], quant.input[1], zero, bits],
                list(quant.output),
                name=quant.name,
                domain=quant.domain,
                signed=1,
                narrow=1,
                rounding_mode="ROUND",
            )
            index = list(wrapper.graph.node).index(quant)
            wrapper.graph.node.remove(quant)
            wrapper.graph.node.insert(index, ternary)
    return wrapper


# ------------------------------------------------------------------------------------------------ checkpoints
PRUNE_REPORT = "prune.json"


@dataclass
class PruneResult:
    """A pruned, retrained and exported network."""

    checkpoint: Path
    model: BNN
    report: dict[str, Any]


def prune_checkpoint(
    checkpoint: Path,
    cfg: PruneConfig,
    out_dir: Path,
    folding: list[tuple[int, int]] | None = None,
    floor_cycles: int = 0,
    data_dir: Path | None = None,
    threads: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    data: Dataset | None = None,
) -> PruneResult:
    """Prune the network of a training checkpoint, retrain it, and write checkpoint.pt, metrics, prune.json,
    model.onnx and golden.npz to out_dir (the accuracy reported is the final model's)."""
    from bnnflow.fileio import ensure_writable_dir, write_json
    from bnnflow.training.config import TrainConfig
    from bnnflow.training.data import load_dataset
    from bnnflow.training.export import export
    from bnnflow.training.train import (
        CHECKPOINT,
        METRICS,
        adam,
        evaluate,
        loss_fn,
        model_from_checkpoint,
        run_epoch,
        save_checkpoint,
        seed_everything,
    )

    cfg.validate()
    out = ensure_writable_dir(out_dir)
    model, ckpt = model_from_checkpoint(checkpoint)
    base = dict(ckpt["config"])
    base.pop("prune", None)
    tcfg = TrainConfig().replace(**base).replace(out_dir=out, progress=progress, threads=threads, lr=cfg.lr)
    if data_dir is not None:
        tcfg = tcfg.replace(data_dir=data_dir)
    data = data if data is not None else load_dataset(tcfg.dataset, tcfg.data_dir)
    if threads:
        torch.set_num_threads(threads)
    seed_everything(tcfg.seed)
    model.to(tcfg.device)
    unpruned_acc = evaluate(model, data.test_x, data.test_y, tcfg.device)
    unpruned = sparsity_report(model, folding)
    epoch = [int(ckpt["epoch"])]
    history: list[dict[str, Any]] = list(ckpt.get("metrics", []))

    def retrain(net: BNN, epochs: int, label: str) -> float:
        optimizer = adam(net.parameters(), cfg.lr, tcfg.weight_decay, tcfg.device)
        start = epoch[0]
        test_acc = None
        for i in range(epochs):
            began = time.perf_counter()
            loss, acc = run_epoch(
                net, optimizer, data, tcfg, epoch[0],
                lambda p, s=start: cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min((p - s) / epochs, 1.0))),
                label=f"{label} epoch {i + 1}/{epochs}",
            )  # fmt: skip
            epoch[0] += 1
            test_acc = evaluate(net, data.test_x, data.test_y, tcfg.device)
            history.append({"epoch": epoch[0], "phase": label, "train_loss": loss, "train_acc": acc,
                            "test_acc": test_acc, "seconds": round(time.perf_counter() - began, 3)})  # fmt: skip
            if log:
                log(f"{label} epoch {i + 1}/{epochs}: train {acc:.2f}% test {test_acc:.2f}%")
        return test_acc if test_acc is not None else evaluate(net, data.test_x, data.test_y, tcfg.device)

    # Input activity decides which pixels never change: as many images as memory comfortably allows.
    x = data.train_x[: min(500 if model.spec.is_cnn else 10000, len(data.train_x))].astype(np.float32)

    def saliency(net: BNN, layers: list[PrunableLayer]) -> dict[str, np.ndarray]:
        n = min(5000, len(data.train_y))
        return taylor_saliency(net, layers, net.select_inputs(data.train_x[:n].astype(np.float32)),
                               data.train_y[:n], lambda out, y: loss_fn(tcfg.loss, out, y))  # fmt: skip

    pruned, steps = run_pruning(model, cfg, retrain, x, folding, floor_cycles, log, saliency)
    pruned.eval()
    final_acc = evaluate(pruned, data.test_x, data.test_y, tcfg.device)
    tcfg = tcfg.replace(epochs=epoch[0])
    final = sparsity_report(pruned, folding)
    # Against the unpruned network: node pruning leaves a smaller network with no masks in it.
    final["sparsity"] = 1.0 - final["kept"] / max(1, unpruned["weights"])
    report = {
        "method": cfg.method.value,
        "config": cfg.to_dict(),
        "source_checkpoint": str(checkpoint),
        "unpruned": {"test_acc": unpruned_acc, **unpruned},
        "pruned": {"test_acc": final_acc, **final},
        "unpruned_cycles": max([floor_cycles, *(r.get("cycles", 0) for r in unpruned["layers"])]) if folding else None,
        "pruned_cycles": max([floor_cycles, *(r.get("cycles", 0) for r in final["layers"])]) if folding else None,
        "steps": [dataclasses.asdict(s) for s in steps],
        "folding": [list(f) for f in folding] if folding else None,
    }
    ckpt_path = out / CHECKPOINT
    save_checkpoint(ckpt_path, pruned, None, pruned.spec, tcfg, epoch[0], history, extra={"prune": report})
    write_json(out / METRICS, {"model": pruned.spec.to_dict(), "dataset": tcfg.dataset, "epochs": history,
                               "final_test_acc": final_acc, "prune": report})  # fmt: skip
    export(pruned, data, out, tcfg.golden_samples)
    write_json(out / PRUNE_REPORT, report)
    return PruneResult(ckpt_path, pruned, report)
