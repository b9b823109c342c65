"""Reading the YAML files that configure each stage, with one-line errors for missing or malformed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bnnflow.errors import BnnflowError


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML (or JSON) file; `what` names the file in errors ("build config")."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise BnnflowError(f"{what} {path} not found; pass an existing YAML file") from exc
    except yaml.YAMLError as exc:
        raise BnnflowError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BnnflowError(f"{what} {path} must be a mapping of option: value")
    return raw
