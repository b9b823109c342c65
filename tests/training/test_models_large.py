"""QONNX export of the large zoo networks (LFC, CNV) against PyTorch: the default tier, not the unit tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from bnnflow.training.models import ZOO_BITS
from tests.training.test_models import check_zoo_export


@pytest.mark.parametrize(("name", "wbits", "abits"), [(n, w, a) for n in ("lfc", "cnv") for (w, a) in ZOO_BITS])
def test_large_zoo_export_equals_pytorch(name: str, wbits: int, abits: int, real_images, tmp_path: Path) -> None:
    check_zoo_export(name, wbits, abits, real_images, tmp_path)
