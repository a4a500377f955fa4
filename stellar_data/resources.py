"""Locate the JSON Schemas shipped with the project.

In a wheel they live at ``stellar_data/_schemas``; in a source checkout (editable install) at the
repository's ``schemas/`` folder, which stays the single source of truth.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


def schema_path(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_schemas" / name, _PACKAGE_DIR.parent / "schemas" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"schema {name} not found beside the stellar_data package")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Parsed schema (read once per process; treat the result as read-only)."""
    return json.loads(schema_path(name).read_text(encoding="utf-8"))
