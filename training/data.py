"""Data sets as uint8 image arrays: MNIST (idx files), CIFAR-10 (binary batches) and the embedded 8x8 digits.

Every file is checked before use (published MD5 for the original MNIST archives, header and exact size for
everything), so a truncated download is an error that says which file and what was expected.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnnflow.errors import BnnflowError

DATASETS = ("digits", "mnist", "cifar10")

# name -> (idx magic, dims after the count, published MD5 of the original .gz)
MNIST_FILES: dict[str, tuple[int, tuple[int, ...], int, str]] = {
    "train-images-idx3-ubyte": (2051, (28, 28), 60000, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte": (2049, (), 60000, "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte": (2051, (28, 28), 10000, "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte": (2049, (), 10000, "ec29112dd5afa0611ce80d1b7f02629c"),
}

CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = "test_batch.bin"
CIFAR10_RECORD = 1 + 3 * 32 * 32
CIFAR10_PER_BATCH = 10000


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (N, C, H, W) and labels as int64 (N,)."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


def default_data_root() -> Path | None:
    """The project's shared data directory (../shared/datasets beside the checkout), if it exists."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "shared" / "datasets", Path.cwd().parent / "shared" / "datasets"):
        if candidate.is_dir():
            return candidate
    return None


def load_dataset(name: str, data_dir: Path | None = None) -> Dataset:
    """Load a data set by name; `data_dir` holds its files (or a folder named after the data set)."""
    key = name.lower()
    if key == "digits":
        return load_digits()
    if key not in DATASETS:
        raise BnnflowError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    root = Path(data_dir) if data_dir is not None else default_data_root()
    if root is None:
        raise BnnflowError(
            f"no data directory for {key}: pass --data-dir DIR with the {key} files, or use --dataset digits"
        )
    if key == "mnist":
        return load_mnist(_subdir(root, "mnist"))
    return load_cifar10(_subdir(root, "cifar10", "cifar-10-batches-bin"))


def _subdir(root: Path, *names: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return root


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), scaled from 0..16 to 0..255; a fixed 80/20 split."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = len(labels) // 5
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", images[train], labels[train], images[test], labels[test])


def _read_idx(directory: Path, stem: str) -> np.ndarray:
    magic_expected, dims, count, md5 = MNIST_FILES[stem]
    gz, raw = directory / f"{stem}.gz", directory / stem
    if gz.is_file():
        data = gz.read_bytes()
        digest = hashlib.md5(data).hexdigest()
        if digest != md5:
            raise BnnflowError(f"MNIST file {gz} is corrupt: md5 {digest}, expected {md5}; download it again")
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise BnnflowError(f"MNIST file {gz} is not a valid gzip file; download it again") from exc
        path = gz
    elif raw.is_file():
        data, path = raw.read_bytes(), raw
    else:
        raise BnnflowError(
            f"MNIST file {stem}.gz not found in {directory}; pass --data-dir DIR with the 4 MNIST idx files"
        )
    header = 8 + 4 * len(dims)
    expected_size = header + count * int(np.prod(dims, dtype=np.int64))
    if len(data) < header:
        raise BnnflowError(f"MNIST file {path} is truncated ({len(data)} bytes); download it again")
    magic, n, *shape = struct.unpack(f">{2 + len(dims)}I", data[:header])
    if magic != magic_expected or n != count or tuple(shape) != dims or len(data) != expected_size:
        raise BnnflowError(
            f"MNIST file {path} is corrupt: header ({magic}, {n}, {shape}) and {len(data)} bytes, expected "
            f"({magic_expected}, {count}, {list(dims)}) and {expected_size} bytes; download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape((count, *dims))


def load_mnist(directory: Path) -> Dataset:
    """MNIST from the four idx files (.gz as distributed, or decompressed)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BnnflowError(f"MNIST directory {directory} does not exist; pass --data-dir DIR with the idx files")
    train_x = _read_idx(directory, "train-images-idx3-ubyte")[:, None]
    train_y = _read_idx(directory, "train-labels-idx1-ubyte").astype(np.int64)
    test_x = _read_idx(directory, "t10k-images-idx3-ubyte")[:, None]
    test_y = _read_idx(directory, "t10k-labels-idx1-ubyte").astype(np.int64)
    for path, labels in (("train", train_y), ("t10k", test_y)):
        if labels.max() > 9:
            raise BnnflowError(f"MNIST {path} labels in {directory} hold values above 9; the file is corrupt")
    return Dataset("mnist", train_x.copy(), train_y, test_x.copy(), test_y)


def _read_cifar_batch(path: Path, records: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise BnnflowError(
            f"CIFAR-10 file {path.name} not found in {path.parent}; pass --data-dir DIR holding "
            f"cifar-10-batches-bin (data_batch_1..5.bin, test_batch.bin)"
        )
    data = path.read_bytes()
    expected = records * CIFAR10_RECORD
    if len(data) != expected:
        raise BnnflowError(
            f"CIFAR-10 file {path} has {len(data)} bytes, expected {expected} "
            f"({records} records of {CIFAR10_RECORD}); download it again"
        )
    table = np.frombuffer(data, dtype=np.uint8).reshape(records, CIFAR10_RECORD)
    labels = table[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise BnnflowError(f"CIFAR-10 file {path} has labels above 9; it is corrupt or not a CIFAR-10 batch")
    return table[:, 1:].reshape(records, 3, 32, 32).copy(), labels


def load_cifar10(directory: Path, records_per_batch: int = CIFAR10_PER_BATCH) -> Dataset:
    """CIFAR-10 binary batches: each record is 1 label byte, then 3072 pixel bytes (R, G, B planes)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BnnflowError(f"CIFAR-10 directory {directory} does not exist; pass --data-dir DIR with the batches")
    parts = [_read_cifar_batch(directory / name, records_per_batch) for name in CIFAR10_TRAIN]
    test_x, test_y = _read_cifar_batch(directory / CIFAR10_TEST, records_per_batch)
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    return Dataset("cifar10", train_x, train_y, test_x, test_y)
