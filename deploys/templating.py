"""Render the project's templates (deploys/templates/, package data that a wheel ships) with
StrictUndefined: a missing value is an error."""

from __future__ import annotations

from pathlib import Path

import jinja2

# Found through the package, not the working directory.
TEMPLATES = Path(__file__).resolve().parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


def render(name: str, **data) -> str:
    """Render deploys/templates/<name> with exactly the given data."""
    return _env.get_template(name).render(**data)
