"""The adapter entry: find each question type's workbooks in the `data/` folder, read both
languages, pair them and yield one entry per row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...errors import SourceFileError
from ..base import Entry, SourceFile
from .cells import load_date_cells, read_sheet
from .formatting import entry_of
from .items import KIND_BY_NAME, KINDS, AstroQaOptions, Kind
from .pairing import pair_items, unpaired


def workbook_path(folder: SourceFile, kind: Kind, lang: str) -> tuple[Path, str]:
    name = f"{lang.upper()}/{kind.stem}_{lang.upper()}.xlsx"
    return folder.path / name, f"{folder.relative}/{name}"


def read_astro_qa(folder: SourceFile, options: AstroQaOptions, lang: str) -> Iterator[Entry]:
    """Read an Astro-QA `data/` folder (both languages; the recipe's `lang` is not used)."""
    if not folder.path.is_dir():
        raise SourceFileError(f"{folder.relative}: the astro_qa adapter reads a folder holding ZH/ and EN/, not a file")
    date_cells = load_date_cells(Path(options.date_cells)) if options.date_cells else {}
    kinds = [KIND_BY_NAME[name] for name in options.types] if options.types else list(KINDS)
    present = 0
    for kind in kinds:
        paths = {language: workbook_path(folder, kind, language) for language in options.languages}
        found = {language for language, (path, _) in paths.items() if path.is_file()}
        if not found and not options.types:
            continue  # a type absent in every language is simply not part of this folder
        missing = [paths[language][1] for language in options.languages if language not in found]
        if missing:
            raise SourceFileError(f"{missing[0]}: file not found (its other-language twin is present)")
        present += 1
        sheets = {language: read_sheet(*paths[language], kind, language, date_cells) for language in options.languages}
        items = (
            pair_items(sheets.get("zh", []), sheets.get("en", []), options)
            if "zh" in sheets
            else unpaired(sheets["en"])
        )
        yield from (entry_of(item) for item in items)
    if present == 0:
        raise SourceFileError(f"{folder.relative}: no Astro-QA workbooks found (expected e.g. ZH/judgment_ZH.xlsx)")
