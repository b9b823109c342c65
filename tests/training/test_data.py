"""Data loaders: real MNIST, CIFAR-10 binary layout (on files the test writes), digits, and file checks."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from bnnflow.errors import BnnflowError
from bnnflow.training.data import (
    CIFAR10_RECORD,
    CIFAR10_TEST,
    CIFAR10_TRAIN,
    MNIST_FILES,
    load_cifar10,
    load_dataset,
    load_digits,
    load_mnist,
)

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_real_files(mnist_dir: Path) -> None:
    data = load_mnist(mnist_dir)
    assert data.train_x.shape == (60000, 1, 28, 28) and data.train_x.dtype == np.uint8
    assert data.test_x.shape == (10000, 1, 28, 28)
    assert np.bincount(data.train_y).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(data.test_y).tolist() == MNIST_TEST_COUNTS
    assert data.train_x.max() == 255 and data.train_x.min() == 0


def _copy_mnist(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for stem in MNIST_FILES:
        shutil.copy(src / f"{stem}.gz", dst / f"{stem}.gz")
    return dst


def test_mnist_corrupt_gz_is_rejected(mnist_dir: Path, tmp_path: Path) -> None:
    d = _copy_mnist(mnist_dir, tmp_path / "m")
    target = d / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BnnflowError, match=r"t10k-labels-idx1-ubyte.gz is corrupt: md5"):
        load_mnist(d)


def test_mnist_truncated_raw_file_is_rejected(mnist_dir: Path, tmp_path: Path) -> None:
    d = _copy_mnist(mnist_dir, tmp_path / "m")
    gz = d / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(gz.read_bytes())
    gz.unlink()
    (d / "t10k-images-idx3-ubyte").write_bytes(raw[:-784])  # one image short
    with pytest.raises(BnnflowError, match=r"t10k-images-idx3-ubyte is corrupt: header .* expected"):
        load_mnist(d)


def test_mnist_uncompressed_files_load(mnist_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "raw"
    d.mkdir()
    for stem in MNIST_FILES:
        (d / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    assert np.bincount(load_mnist(d).test_y).tolist() == MNIST_TEST_COUNTS


def test_mnist_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(BnnflowError, match=r"train-images-idx3-ubyte.gz not found in .*--data-dir"):
        load_mnist(tmp_path)
    with pytest.raises(BnnflowError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def _write_cifar(directory: Path, records: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write batches in CIFAR-10's binary layout: per record 1 label byte, then R, G, B 32x32 planes."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in (*CIFAR10_TRAIN, CIFAR10_TEST):
        labels = rng.integers(0, 10, records, dtype=np.uint8)
        pixels = rng.integers(0, 256, (records, 3, 32, 32), dtype=np.uint8)
        table = np.concatenate([labels[:, None], pixels.reshape(records, -1)], axis=1)
        (directory / name).write_bytes(table.tobytes())
        written[name] = (pixels, labels)
    return written


def test_cifar10_binary_layout_full_size(tmp_path: Path) -> None:
    """Full-size synthetic batches (30,730,000 bytes each): no real CIFAR-10 copy is available here."""
    written = _write_cifar(tmp_path / "cifar-10-batches-bin", 10000)
    data = load_dataset("cifar10", tmp_path)
    assert data.train_x.shape == (50000, 3, 32, 32) and data.test_x.shape == (10000, 3, 32, 32)
    pixels, labels = written["data_batch_3.bin"]
    np.testing.assert_array_equal(data.train_x[20000:30000], pixels)
    np.testing.assert_array_equal(data.train_y[20000:30000], labels)
    np.testing.assert_array_equal(data.test_x, written[CIFAR10_TEST][0])
    # Channel planes stay planes: the first 1024 pixel bytes of a record are the red channel.
    raw = (tmp_path / "cifar-10-batches-bin" / CIFAR10_TEST).read_bytes()
    assert np.frombuffer(raw[1 : 1 + 1024], dtype=np.uint8).tolist() == data.test_x[0, 0].ravel().tolist()


def test_cifar10_wrong_size_and_labels(tmp_path: Path) -> None:
    _write_cifar(tmp_path, 4)
    with pytest.raises(BnnflowError, match=rf"data_batch_1.bin has {4 * CIFAR10_RECORD} bytes, expected 30730000"):
        load_cifar10(tmp_path)
    assert load_cifar10(tmp_path, records_per_batch=4).train_x.shape == (20, 3, 32, 32)
    bad = bytearray((tmp_path / CIFAR10_TEST).read_bytes())
    bad[0] = 12
    (tmp_path / CIFAR10_TEST).write_bytes(bytes(bad))
    with pytest.raises(BnnflowError, match="labels above 9"):
        load_cifar10(tmp_path, records_per_batch=4)
    (tmp_path / "data_batch_4.bin").unlink()
    with pytest.raises(BnnflowError, match=r"data_batch_4\.bin not found"):
        load_cifar10(tmp_path, records_per_batch=4)


def test_digits_embedded_default() -> None:
    data = load_digits()
    assert data.train_x.shape == (1438, 1, 8, 8) and data.test_x.shape == (359, 1, 8, 8)
    assert data.train_x.dtype == np.uint8 and data.train_x.max() == 255
    assert sorted(set(data.test_y.tolist())) == list(range(10))
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.test_x, data.test_x)


def test_unknown_dataset() -> None:
    with pytest.raises(BnnflowError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
