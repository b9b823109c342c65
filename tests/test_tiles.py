"""Fold-tile geometry and the sparse schedule's cycle count, and the XNOR threshold re-basing of a tile-sparse
layer, checked against plain numpy arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnflow.errors import BnnflowError
from bnnflow.hw.layers import xnor_thresholds
from bnnflow.tiles import kept_tiles, schedule, schedule_steps, tile_mask, tile_view, vector_cycles

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`


def test_tile_view_and_kept_tiles() -> None:
    w = np.arange(1, 4 * 6 + 1).reshape(4, 6)
    view = tile_view(w, 2, 3)
    assert view.shape == (2, 2, 2, 3)
    assert view[1, 0].tolist() == [[13, 14, 15], [19, 20, 21]]
    w[0:2, 3:6] = 0
    assert kept_tiles(w, 2, 3).tolist() == [[True, False], [True, True]]
    assert tile_mask(kept_tiles(w, 2, 3), 2, 3).astype(int).tolist() == (w != 0).astype(int).tolist()
    with pytest.raises(BnnflowError, match="PE=3 must divide its 4 rows"):
        tile_view(w, 3, 3)


def test_schedule_counts_a_step_for_an_empty_row_fold() -> None:
    kept = np.array([[True, False, True], [False, False, False], [False, True, False]])
    assert schedule(kept) == [(0, 0, True, False), (0, 2, True, True), (1, 0, False, True), (2, 1, True, True)]
    assert schedule_steps(kept) == 4
    assert vector_cycles(kept) == 4
    assert vector_cycles(np.ones((4, 5), bool)) == 20  # dense: NF * SF, FINN's figure
    assert vector_cycles(np.eye(1, 8, dtype=bool)) == 8  # one kept tile still reads all SF input words


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_xnor_thresholds_equal_the_signed_sum(data) -> None:
    pe, simd = data.draw(st.sampled_from([1, 2, 4])), data.draw(st.sampled_from([1, 3, 4]))
    nf, sf = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    seed = data.draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    kept = rng.random((nf, sf)) < 0.6
    rows, cols = nf * pe, sf * simd
    w = rng.choice([-1, 1], size=(rows, cols)) * tile_mask(kept, pe, simd)
    x = rng.choice([-1, 1], size=(16, cols))
    thr = np.sort(rng.integers(-cols - 1, cols + 2, size=(rows, 3)), axis=1)
    signed = x @ w.T  # what FINN's MVAU computes with the ternary weights
    want = (signed[:, :, None] >= thr[None]).sum(-1)
    matches = ((x[:, None, :] > 0) == (w[None] > 0)) & (w[None] != 0)  # popcount over the kept tiles only
    got = (matches.sum(-1)[:, :, None] >= xnor_thresholds(thr, kept, pe, simd)[None]).sum(-1)
    assert np.array_equal(got, want)
