"""FINN's C++ simulation of its HLS layers needs finn-hlslib, which no package registry ships (FINN clones it
from GitHub into its dependency directory). This module finds it and says why cppsim is skipped."""

from __future__ import annotations

import os
from pathlib import Path


def hlslib_candidates() -> list[Path]:
    """Where finn-plus looks for its dependencies: $FINN_DEPS, else <FINN_ROOT>/finn_deps."""
    out = []
    if os.environ.get("FINN_DEPS"):
        out.append(Path(os.environ["FINN_DEPS"]) / "finn-hlslib")
    try:
        from finn.interface.settings import FINN_ROOT

        out.append(Path(FINN_ROOT) / "finn_deps" / "finn-hlslib")
    except ImportError:
        pass
    return out


def find_hlslib() -> Path | None:
    for path in hlslib_candidates():
        if (path / "mvau.hpp").is_file() or (path / "bnn-library.h").is_file():
            return path
    return None


def cppsim_status() -> str:
    """One line for the simulation report: why FINN's cppsim did or did not run."""
    found = find_hlslib()
    if found is None:
        where = ", ".join(str(p) for p in hlslib_candidates()) or "no FINN dependency directory"
        return f"skipped: finn-hlslib not found ({where}); no registry package ships it"
    return f"skipped: finn-hlslib found at {found}, but bnnflow does not run FINN's cppsim yet"
