"""Shared fixtures: deterministic seeding for every test, and real image data for model tests."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from bnnflow.errors import BnnflowError
from bnnflow.sim.verilator import Verilator, find_verilator
from bnnflow.training.data import default_data_root

# One torch thread per test process. The suite runs a worker per core (pytest-xdist); torch's default of a thread
# per core would put two spinning thread pools on every core, which slows small trainings down tenfold or more.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory) -> None:
    """bnnflow's user cache (compiled Verilator models) lives in the test session's temporary directory; other
    tools' caches (YoWASP's compiled Yosys and nextpnr, matplotlib's fonts) stay where they are."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BNNFLOW_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def verilator() -> Verilator:
    """Verilator for the RTL tests (every test marked `verilator` uses it); they skip, saying so, without it."""
    try:
        return find_verilator()
    except BnnflowError as exc:
        pytest.skip(f"Verilator unavailable: {exc}")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    root = default_data_root()
    if root is None or not (root / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST idx files not found in ../shared/datasets/mnist (only CI and developers have them)")
    return root / "mnist"


def _digits_images() -> np.ndarray:
    from bnnflow.training.data import load_digits

    return load_digits().test_x


@pytest.fixture(scope="session")
def real_images():
    """Return `f(n, shape)`: n real test images as uint8 (n, C, H, W).

    MNIST test images where the files are present (CI), else the embedded 8x8 digits. They are resized to the
    requested shape by nearest-neighbour sampling and repeated over channels: no CIFAR-10 copy exists here,
    so CNV is fed real digit images in its 3x32x32 layout.
    """
    root = default_data_root()
    mnist = root / "mnist" if root is not None else None
    if mnist is not None and (mnist / "t10k-images-idx3-ubyte.gz").is_file():
        from bnnflow.training.data import _read_idx

        base = _read_idx(mnist, "t10k-images-idx3-ubyte")[:, None]
    else:
        base = _digits_images()

    def take(n: int, shape: tuple[int, int, int]) -> np.ndarray:
        c, h, w = shape
        imgs = base[:n]
        rows = np.arange(h) * imgs.shape[2] // h
        cols = np.arange(w) * imgs.shape[3] // w
        imgs = imgs[:, :, rows][:, :, :, cols]
        return np.repeat(imgs, c, axis=1).astype(np.uint8)

    return take
