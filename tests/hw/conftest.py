"""RTL layer tests need Verilator; they skip, saying so, where it is missing."""

from __future__ import annotations

import pytest

from bnnflow.errors import BnnflowError
from bnnflow.sim.verilator import Verilator, find_verilator


@pytest.fixture(scope="session")
def verilator() -> Verilator:
    try:
        return find_verilator()
    except BnnflowError as exc:
        pytest.skip(f"Verilator unavailable: {exc}")
