"""Data moves one way, training -> dataflow -> hw -> sim: no stage imports a later one, and the later stages
reach the artifacts through bnnflow.artifacts, never through training."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["training", "dataflow", "hw", "sim"]


def _imported_stages(folder: str) -> set[str]:
    stages = set()
    for path in (ROOT / folder).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if len(parts) > 1 and parts[0] == "bnnflow" and parts[1] in ORDER:
                    stages.add(parts[1])
    return stages


@pytest.mark.parametrize("stage", ORDER)
def test_no_stage_imports_a_later_or_the_training_stage(stage: str) -> None:
    allowed = set(ORDER[: ORDER.index(stage) + 1]) - ({"training"} if stage != "training" else set())
    assert _imported_stages(stage) <= allowed, f"{stage} imports {_imported_stages(stage) - allowed}"
