"""Fold tiles: a folded matrix-vector unit computes one PE x SIMD block of its weight matrix per cycle.

Shared by training (which prunes whole tiles), the estimates (which count the cycles of a sparse schedule) and
the RTL generator (which stores and visits only the tiles that hold a non-zero weight). A weight matrix here is
(MH, MW): output rows by input columns, columns in the hardware's order.
"""

from __future__ import annotations

import numpy as np

from bnnflow.errors import BnnflowError


def check_fold(rows: int, cols: int, pe: int, simd: int, what: str = "layer") -> None:
    if pe < 1 or simd < 1 or rows % pe or cols % simd:
        raise BnnflowError(
            f"{what}: PE={pe} must divide its {rows} rows and SIMD={simd} its {cols} columns; "
            "choose a folding whose PE and SIMD divide the layer"
        )


def tile_view(matrix: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """(MH, MW) -> (NF, SF, PE, SIMD): tile (nf, sf) holds rows nf*PE.. and columns sf*SIMD.."""
    rows, cols = matrix.shape
    check_fold(rows, cols, pe, simd)
    return matrix.reshape(rows // pe, pe, cols // simd, simd).transpose(0, 2, 1, 3)


def kept_tiles(matrix: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """(NF, SF) booleans: which tiles hold at least one non-zero weight."""
    return np.asarray(tile_view(np.asarray(matrix) != 0, pe, simd).any(axis=(2, 3)))


def tile_mask(kept: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """The (MH, MW) element mask of a (NF, SF) tile mask."""
    return np.repeat(np.repeat(np.asarray(kept, dtype=bool), pe, axis=0), simd, axis=1)


def schedule_steps(kept: np.ndarray) -> int:
    """Schedule entries per input vector: every kept tile, and one step for a row fold with none (its outputs
    must still be emitted)."""
    return int(np.maximum(1, np.asarray(kept, dtype=bool).sum(axis=1)).sum())


def vector_cycles(kept: np.ndarray) -> int:
    """Cycles per input vector in steady state: the schedule, or the SF words of the input if those take longer.
    A dense grid gives NF * SF, FINN's figure."""
    kept = np.asarray(kept, dtype=bool)
    return max(kept.shape[1], schedule_steps(kept))


def is_sparse(kept: np.ndarray) -> bool:
    return not bool(np.asarray(kept, dtype=bool).all())


def schedule(kept: np.ndarray) -> list[tuple[int, int, bool, bool]]:
    """The steps of one input vector, as (nf, sf, valid, last): row folds in order, each visiting its kept
    column folds in order; a row fold with no kept tile gets one invalid step that only emits its outputs."""
    steps = []
    for nf, row in enumerate(np.asarray(kept, dtype=bool)):
        cols = [int(sf) for sf in np.nonzero(row)[0]]
        if not cols:
            steps.append((nf, 0, False, True))
        for i, sf in enumerate(cols):
            steps.append((nf, sf, True, i == len(cols) - 1))
    return steps
