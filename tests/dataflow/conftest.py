"""Fixtures for dataflow tests: exported zoo models with non-trivial BatchNorm statistics and real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bnnflow.training.data import Dataset
from bnnflow.training.export import export
from bnnflow.training.models import build_model, randomize_batchnorm, zoo_spec

SHAPES = {"tfc": (1, 28, 28), "sfc": (1, 28, 28), "lfc": (1, 28, 28), "cnv": (3, 32, 32)}


@pytest.fixture(scope="session")
def exported(tmp_path_factory, real_images):
    """Return `f(name, wbits, abits, samples)` -> directory holding model.onnx and golden.npz (cached)."""
    cache: dict[tuple[str, int, int, int], Path] = {}

    def make(name: str, wbits: int, abits: int, samples: int = 4) -> Path:
        key = (name, wbits, abits, samples)
        if key not in cache:
            torch.manual_seed(11)
            model = build_model(zoo_spec(name, wbits, abits, SHAPES[name]))
            randomize_batchnorm(model, seed=11)
            images = real_images(samples, SHAPES[name])
            labels = np.zeros(samples, dtype=np.int64)
            out = tmp_path_factory.mktemp(f"{name}-w{wbits}a{abits}")
            export(model.eval(), Dataset("real", images, labels, images, labels), out, golden_samples=samples)
            cache[key] = out
        return cache[key]

    return make
