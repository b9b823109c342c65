"""Illegal layer parameters stop elaboration with the module's own message (its `$error` checks), instead of a
design that silently drops columns or rows; legal ones elaborate without it. Verilator reports `$error` as the
USERERROR warning, so it is linted here without the -Wno-fatal the simulation harness passes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bnnflow.hw.generate import library_files, with_submodules
from bnnflow.sim.verilator import Verilator

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

# Legal parameters per module; each bad case overrides some of them.
MVAU = {"MW": 8, "MH": 6, "PE": 2, "SIMD": 4, "IBITS": 1, "WBITS": 1, "ACCBITS": 6, "OBITS": 1, "NTHRES": 1}
LEGAL: dict[str, dict[str, int]] = {
    "bnn_mvau": MVAU,
    "bnn_mvau_sparse": {**MVAU, "STEPS": 6},
    "bnn_vvau": {"C": 6, "K": 9, "PE": 2, "SIMD": 3, "IBITS": 1, "WBITS": 1, "ACCBITS": 6, "OBITS": 1, "NTHRES": 1},
    "bnn_thresholding": {"C": 4, "PE": 2, "IBITS": 3, "TBITS": 5, "OBITS": 2, "NTHRES": 3},
    "bnn_dwc": {"BITS": 2, "IN": 3, "OUT": 2},
    "bnn_label_select": {"LABELS": 10, "PE": 2, "IBITS": 8, "OBITS": 4},
    "bnn_swg": {"BITS": 2, "SIMD": 2, "C": 4, "H": 5, "W": 4, "KH": 3, "KW": 2, "SH": 2, "OH": 2, "OW": 3, "PAR": 1},
    "bnn_pool": {"BITS": 3, "OBITS": 3, "SIGNED": 1, "PE": 2, "K2": 4},
}
BAD = [
    ("bnn_mvau", {"SIMD": 3}, r"bnn_mvau: SIMD \(3\) must divide MW \(8\)"),
    ("bnn_mvau", {"PE": 4}, r"bnn_mvau: PE \(4\) must divide MH \(6\)"),
    ("bnn_mvau", {"NTHRES": -1}, r"bnn_mvau: NTHRES \(-1\) must not be negative"),
    ("bnn_mvau", {"IBITS": 2, "XNOR": 1}, r"bnn_mvau: XNOR needs 1-bit codes \(IBITS 2, WBITS 1\)"),
    ("bnn_mvau_sparse", {"SIMD": 3}, r"bnn_mvau_sparse: SIMD \(3\) must divide MW \(8\)"),
    ("bnn_mvau_sparse", {"PE": 4}, r"bnn_mvau_sparse: PE \(4\) must divide MH \(6\)"),
    ("bnn_mvau_sparse", {"STEPS": 2}, r"bnn_mvau_sparse: STEPS \(2\) must be at least MH / PE \(3\)"),
    ("bnn_mvau_sparse", {"NTHRES": -1}, r"bnn_mvau_sparse: NTHRES \(-1\) must not be negative"),
    ("bnn_vvau", {"SIMD": 2}, r"bnn_vvau: SIMD \(2\) must divide K \(9\)"),
    ("bnn_vvau", {"PE": 4}, r"bnn_vvau: PE \(4\) must divide C \(6\)"),
    ("bnn_vvau", {"K": 0}, r"bnn_vvau: C \(6\), K \(0\), PE \(2\) and SIMD \(3\) must be at least 1"),
    ("bnn_vvau", {"NTHRES": -1}, r"bnn_vvau: NTHRES \(-1\) must not be negative"),
    ("bnn_vvau", {"WBITS": 2, "XNOR": 1}, r"bnn_vvau: XNOR needs 1-bit codes \(IBITS 1, WBITS 2\)"),
    ("bnn_vvau", {"ACCBITS": 1}, r"bnn_vvau: IBITS .* must be at least 1 and ACCBITS \(1\) at least 2"),
    ("bnn_dwc", {"IN": 0}, r"bnn_dwc: BITS \(2\), IN \(0\) and OUT \(2\) must be at least 1"),
    ("bnn_label_select", {"PE": 3}, r"bnn_label_select: PE \(3\) must divide LABELS \(10\)"),
    ("bnn_label_select", {"OBITS": 3}, r"bnn_label_select: OBITS \(3\) too narrow for LABELS \(10\) indices"),
    ("bnn_swg", {"SIMD": 3}, r"bnn_swg: SIMD \(3\) must divide C \(4\)"),
    ("bnn_swg", {"OH": 3}, r"bnn_swg: OH x OW \(3 x 3\) is not the output of a 5 x 4 image"),
    ("bnn_pool", {"K2": 0}, r"bnn_pool: BITS \(3\), OBITS \(3\), PE \(2\), K2 \(0\) must be at least 1"),
    ("bnn_pool", {"OBITS": 4}, r"bnn_pool: a maximum keeps its input's width \(OBITS 4, BITS 3\)"),
]


def lint(verilator: Verilator, tmp_path: Path, module: str, params: dict[str, int]) -> subprocess.CompletedProcess:
    """Verilator --lint-only of the module as top, with the library modules it instantiates (so a missing entry in
    generate.SUBMODULES shows here) and `params` overriding its defaults."""
    sources = [p for p in library_files() if p.stem in with_submodules({module})]
    assert module in {p.stem for p in sources}, f"{module} is not in the library"
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
