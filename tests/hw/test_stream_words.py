"""Stream words: element codes packed into hex words (element 0 in the least significant bits) and back, the
vectorized packing against Python's own integers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnflow.hw.layers import pack_words, unpack_words

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`


def _reference(rows: np.ndarray, bits: int) -> list[str]:
    digits = max(1, (bits * rows.shape[1] + 3) // 4)
    words = []
    for row in rows:
        word = sum(int(c) << (i * bits) for i, c in enumerate(row))
        words.append(f"{word:0{digits}x}")
    return words


@settings(max_examples=150, deadline=None)
@given(bits=st.integers(1, 40), elems=st.integers(1, 70), rows=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_pack_and_unpack_match_python_integers(bits: int, elems: int, rows: int, seed: int) -> None:
    codes = np.random.default_rng(seed).integers(0, 1 << bits, size=(rows, elems), dtype=np.int64)
    words = pack_words(codes, bits)
    assert words == _reference(codes, bits)
    assert np.array_equal(unpack_words(words, bits, elems), codes)


def test_unpack_reads_words_without_leading_zeros_and_in_capitals() -> None:
    assert unpack_words(["1", "F0", "0a"], 4, 2).tolist() == [[1, 0], [0, 15], [10, 0]]
    assert unpack_words([], 3, 5).shape == (0, 5)
    # Extreme codes: all ones across a word wider than 64 bits.
    ones = np.full((2, 3), (1 << 30) - 1, dtype=np.int64)
    assert pack_words(ones, 30) == ["3" + "f" * 22] * 2
