"""The artifact helpers every stage shares: golden files and the tie-aware comparison with PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bnnflow.artifacts import compare_outputs, load_golden, save_golden
from bnnflow.errors import BnnflowError

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`


def test_values_are_compared_element_by_element_within_the_tolerance() -> None:
    golden = np.array([[1.0, 2.0, 3.0], [100.0, -5.0, 0.5]], dtype=np.float32)
    same = compare_outputs(golden + 1e-6, golden)
    assert same.ok and same.elements == 6 and same.mismatches == 0
    # Relative to max(1, |value|): 100 may move by 1e-3, 0.5 only by 1e-5.
    moved = golden.copy()
    moved[1, 0] += 5e-4
    moved[1, 2] += 5e-4
    cmp = compare_outputs(moved, golden)
    assert cmp.mismatches == 1 and not cmp.ok and cmp.max_abs_diff == pytest.approx(5e-4, rel=2e-2)


def test_integer_outputs_are_compared_exactly() -> None:
    golden = np.array([[3.0, 4.0]])
    assert compare_outputs(golden, golden, integer=True).ok
    assert compare_outputs(golden + 1e-7, golden, integer=True).mismatches == 2


def test_a_near_tie_is_counted_not_a_divergence() -> None:
    golden = np.array([[0.5, 0.5 + 1e-7, -1.0], [2.0, 0.0, 1.0]])
    label = np.array([[0], [0]])  # sample 0 picks class 0 although class 1 is higher by 1e-7
    cmp = compare_outputs(label, golden)
    assert cmp.kind == "label" and cmp.ok and cmp.near_ties == 1 and cmp.top1_divergent == 0
    values = golden.copy()
    values[0, 1] -= 2e-7  # the argmax flips within the tolerance
    cmp = compare_outputs(values, golden)
    assert cmp.ok and cmp.near_ties == 1


def test_a_clear_top1_difference_diverges() -> None:
    golden = np.array([[0.5, 0.7, -1.0], [2.0, 0.0, 1.0]])
    cmp = compare_outputs(np.array([[0], [2]]), golden)  # margins 0.2 and 1.0 are far above the tolerance
    assert not cmp.ok and cmp.top1_divergent == 2 and cmp.near_ties == 0
    assert not compare_outputs(np.array([[0], [7]]), golden).ok  # no such class


def test_shapes_that_cannot_be_compared() -> None:
    with pytest.raises(BnnflowError, match="cannot be compared"):
        compare_outputs(np.zeros((2, 3)), np.zeros((2, 4)))


def test_golden_round_trip_and_corrupt_files(tmp_path: Path) -> None:
    arrays = {"inputs": np.zeros((2, 3), np.float32), "outputs": np.ones((2, 4), np.float32)}
    save_golden(tmp_path / "g.npz", arrays)
    loaded = load_golden(tmp_path / "g.npz")
    assert set(loaded) == {"inputs", "outputs"} and np.array_equal(loaded["outputs"], arrays["outputs"])
    (tmp_path / "zip.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    (tmp_path / "text.npz").write_text("not numpy")
    for name in ("zip.npz", "text.npz"):
        with pytest.raises(BnnflowError, match=rf"golden file .*{name} is corrupt"):
            load_golden(tmp_path / name)
    save_golden(tmp_path / "short.npz", {"inputs": arrays["inputs"]})
    with pytest.raises(BnnflowError, match=r"lacks \['outputs'\]"):
        load_golden(tmp_path / "short.npz")
    with pytest.raises(BnnflowError, match="not found"):
        load_golden(tmp_path / "none.npz")
