"""Test helper: random fold-tile masks on a BNN, laid on the folding of a dense build of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import write_rtl
from bnnflow.prune import mvau_folding
from bnnflow.tiles import kept_tiles
from bnnflow.training.data import Dataset
from bnnflow.training.export import export
from bnnflow.training.models import BNN
from bnnflow.training.prune import current_mask, prunable_layers, set_mask


def random_tile_masks(model: BNN, folds: list[tuple[int, int]], keep: float, seed: int) -> list[np.ndarray]:
    """Mask about `keep` of each layer's PE x SIMD tiles (each row fold keeps its first column fold);
    returns the kept-tile grids."""
    rng = np.random.default_rng(seed)
    grids = []
    for layer, (pe, simd) in zip(prunable_layers(model), folds, strict=True):
        kept = rng.random((layer.rows // pe, layer.cols // simd)) < keep
        kept[:, 0] = True
        set_mask(layer.module, layer.tensor(np.repeat(np.repeat(kept, pe, 0), simd, 1).astype(np.float32)))
        grids.append(kept_tiles(layer.matrix(current_mask(layer.module)), pe, simd))
    return grids


def tile_pruned_build(
    model: BNN, data: Dataset, out: Path, cycles: int, keep: float = 0.5, seed: int = 0
) -> tuple[Path, list[np.ndarray]]:
    """Export and build `model` densely at `cycles`, mask random tiles of that folding, export and build the
    pruned network with the same folding; returns its build directory and the kept-tile grids."""
    samples = len(data.test_y)
    export(model.eval(), data, out / "dense", golden_samples=samples)
    dense_cfg = BuildConfig(output_dir=out / "dense" / "build", target_cycles_per_frame=cycles, verify=False)
    dense = build(out / "dense" / "model.onnx", dense_cfg)
    folds, _, _ = mvau_folding(dense.output_dir)
    grids = random_tile_masks(model, folds, keep, seed)
    export(model.eval(), data, out / "pruned", golden_samples=samples)
    pruned = build(out / "pruned" / "model.onnx",
                   BuildConfig(output_dir=out / "pruned" / "build", verify_samples=samples,
                               folding_config_file=dense.output_dir / "folding.json"))  # fmt: skip
    write_rtl(pruned.output_dir)
    return pruned.output_dir, grids
