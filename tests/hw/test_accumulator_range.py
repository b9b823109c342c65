"""The raw accumulator's exact range (what FINN's MinimizeAccumulatorWidth sizes it for), against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qonnx.core.datatype import DataType

from bnnflow.hw.layers import accumulator_range

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    mw=st.integers(1, 4),
    mh=st.integers(1, 3),
    dtype=st.sampled_from(["BIPOLAR", "UINT2", "INT2", "INT3", "UINT1"]),
    seed=st.integers(0, 2**16),
)
def test_accumulator_range_is_exact(mw: int, mh: int, dtype: str, seed: int) -> None:
    idt = DataType[dtype]
    w = np.random.default_rng(seed).integers(-3, 4, size=(mw, mh))
    values = [-1, 1] if dtype == "BIPOLAR" else list(range(int(idt.min()), int(idt.max()) + 1))
    sums = [np.asarray(x) @ w for x in itertools.product(values, repeat=mw)]
    assert accumulator_range(w, idt) == (int(np.min(sums)), int(np.max(sums)))
