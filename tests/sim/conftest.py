"""Simulator tests need Verilator; they skip, saying so, where it is missing."""

from __future__ import annotations

import pytest

from bnnflow.errors import BnnflowError
from bnnflow.sim.verilator import find_verilator


@pytest.fixture(scope="session")
def verilator():
    try:
        return find_verilator()
    except BnnflowError as exc:
        pytest.skip(f"Verilator unavailable: {exc}")


# The dataflow fixtures (exported zoo models) are shared.
from tests.dataflow.conftest import exported  # noqa: E402, F401
