"""Fixtures of the simulator tests (the Verilator fixture is the shared one in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_cnn(tmp_path: Path, real_images, wbits: int, abits: int) -> Path:
    """A user CNN (conv-pool-conv-fc) on 16x16 digit images: the CNN layers at a size CI can afford."""
    import torch

    from bnnflow.training.data import Dataset
    from bnnflow.training.export import export
    from bnnflow.training.models import build_model, load_model_config, randomize_batchnorm

    cfg = tmp_path / "cnn.yaml"
    cfg.write_text(
        f"name: tinycnn\nwbits: {wbits}\nabits: {abits}\n"
        "conv:\n  - {channels: 8, kernel: 3, pool: true}\n  - {channels: 8, kernel: 3}\nfc: [16]\n"
    )
    torch.manual_seed(3)
    model = build_model(load_model_config(cfg, (1, 16, 16)))
    randomize_batchnorm(model, seed=3)
    images = real_images(8, (1, 16, 16))
    labels = np.zeros(8, dtype=np.int64)
    export(model.eval(), Dataset("real", images, labels, images, labels), tmp_path / "model", golden_samples=8)
    return tmp_path / "model"


# The dataflow fixtures (exported zoo models) are shared.
from tests.dataflow.conftest import exported  # noqa: E402, F401
