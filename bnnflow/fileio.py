"""Atomic file output: every artifact appears whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from bnnflow.errors import BnnflowError


def ensure_writable_dir(path: Path, what: str = "output directory") -> Path:
    """Create `path` if needed and prove that files can be written into it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BnnflowError(f"cannot write to {what} {path}: {reason}; choose another directory") from exc
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: setting it to read it is not thread-safe


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success it replaces `dest` in one rename."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp's 0600 would make every artifact private
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(dest: Path) -> Iterator[BinaryIO]:
    """Open a binary file that only becomes `dest` once it has been written and flushed."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_bytes(dest: Path, data: bytes) -> None:
    with atomic_open(dest) as fh:
        fh.write(data)


def write_text(dest: Path, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: Path, obj: Any) -> None:
    """Deterministic JSON (sorted keys, fixed indentation), written atomically."""
    write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")
