"""Jinja rendering of the packaged templates (hw/templates, sim/templates) with strict placeholders."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from bnnflow.errors import BnnflowError


def _svparam(value: int | str) -> str:
    return f'"{value}"' if isinstance(value, str) else str(int(value))


def render(package: str, template: str, **context: Any) -> str:
    """Render `template` from `<package>/templates`; a placeholder without a value is an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(str(resources.files(package))) / "templates")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["svparam"] = _svparam
    try:
        return env.get_template(template).render(**context)
    except jinja2.UndefinedError as exc:
        raise BnnflowError(f"template {template}: {exc.message}; this is a bug in bnnflow") from exc
