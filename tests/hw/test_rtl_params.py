"""Illegal layer parameters stop elaboration with the module's own message (its `$error` checks), instead of a
design that silently drops columns or rows; legal ones elaborate without it. Verilator reports `$error` as the
USERERROR warning, so it is linted here without the -Wno-fatal the simulation harness passes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bnnflow.hw.generate import library_files
from bnnflow.sim.verilator import Verilator

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

# Legal parameters per module; each bad case overrides some of them.
MVAU = {"MW": 8, "MH": 6, "PE": 2, "SIMD": 4, "IBITS": 1, "WBITS": 1, "ACCBITS": 6, "OBITS": 1, "NTHRES": 1}
LEGAL: dict[str, dict[str, int]] = {
    "bnn_mvau": MVAU,
    "bnn_mvau_sparse": {**MVAU, "STEPS": 6},
    "bnn_dwc": {"BITS": 2, "IN": 3, "OUT": 2},
    "bnn_label_select": {"LABELS": 10, "PE": 2, "IBITS": 8, "OBITS": 4},
}
BAD = [
    ("bnn_mvau", {"SIMD": 3}, r"bnn_mvau: SIMD \(3\) must divide MW \(8\)"),
    ("bnn_mvau", {"PE": 4}, r"bnn_mvau: PE \(4\) must divide MH \(6\)"),
    ("bnn_mvau", {"NTHRES": -1}, r"bnn_mvau: NTHRES \(-1\) must not be negative"),
    ("bnn_mvau", {"IBITS": 2, "XNOR": 1}, r"bnn_mvau: XNOR needs 1-bit codes \(IBITS 2, WBITS 1\)"),
    ("bnn_mvau_sparse", {"SIMD": 3}, r"bnn_mvau_sparse: SIMD \(3\) must divide MW \(8\)"),
    ("bnn_mvau_sparse", {"PE": 4}, r"bnn_mvau_sparse: PE \(4\) must divide MH \(6\)"),
    ("bnn_mvau_sparse", {"STEPS": 2}, r"bnn_mvau_sparse: STEPS \(2\) must be at least MH / PE \(3\)"),
    ("bnn_dwc", {"IN": 0}, r"bnn_dwc: BITS \(2\), IN \(0\) and OUT \(2\) must be at least 1"),
    ("bnn_label_select", {"PE": 3}, r"bnn_label_select: PE \(3\) must divide LABELS \(10\)"),
    ("bnn_label_select", {"OBITS": 3}, r"bnn_label_select: OBITS \(3\) too narrow for LABELS \(10\) indices"),
]


def lint(verilator: Verilator, tmp_path: Path, module: str, params: dict[str, int]) -> subprocess.CompletedProcess:
    """Verilator --lint-only of the module alone as top, with `params` overriding its defaults."""
    sources = [p for p in library_files() if p.stem == module]
    assert sources, f"{module} is not in the library"
    cmd = [str(verilator.executable), "--lint-only", "-Wno-lint", "-Wno-style", "--top-module", module]
    cmd += [f"-G{name}={value}" for name, value in params.items()]
    return subprocess.run(
        [*cmd, *map(str, sources)], cwd=tmp_path, env=verilator.env(), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("module", sorted(LEGAL))
def test_legal_parameters_elaborate(verilator: Verilator, tmp_path: Path, module: str) -> None:
    result = lint(verilator, tmp_path, module, LEGAL[module])
    assert result.returncode == 0, result.stderr
    assert "USERERROR" not in result.stderr


@pytest.mark.parametrize(("module", "bad", "message"), BAD, ids=[f"{m}-{'-'.join(b)}" for m, b, _ in BAD])
def test_illegal_parameters_are_refused(
    verilator: Verilator, tmp_path: Path, module: str, bad: dict[str, int], message: str
) -> None:
    result = lint(verilator, tmp_path, module, {**LEGAL[module], **bad})
    assert result.returncode != 0
    assert "USERERROR" in result.stderr
    assert re.search(message, result.stderr), result.stderr
