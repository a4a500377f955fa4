"""Small builders for crafted test input."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from stellar_data.sources import SourceFile


def source_file(path: Path, root: Path | None = None) -> SourceFile:
    return SourceFile(path, path.relative_to(root).as_posix() if root else path.name)


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list[Any | str]) -> Path:
    """Objects are dumped; str entries are written verbatim (to plant malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def write_recipe(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def alpaca_recipe(directory: Path, sources: str = ".", extra: str = "", source_extra: str = "") -> Path:
    """A one-source alpaca recipe reading `data.json` under `sources`."""
    return write_recipe(
        directory / "recipe.toml",
        f"""
        [corpus]
        name = "t"
        seed = 1
        sources_dir = "{sources}"
        {extra}

        [[sources]]
        name = "general"
        adapter = "alpaca"
        path = "data.json"
        category = "general"
        lang = "en"
        {source_extra}
        """,
    )
