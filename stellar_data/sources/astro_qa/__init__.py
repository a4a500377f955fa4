"""Astro-QA (ACMISLab/Astro-QA): the ZH and EN workbooks of one `data/` folder, paired by type and ID.

The source path is the folder holding `ZH/` and `EN/`, with one workbook per question type and
language (`ZH/single-select multi choice(4)_ZH.xlsx`, ...). EN files are row-aligned translations:
the same ID is the same item. Reading works in stages, one module each:

1. `cells.read_sheet` turns each row into a `SheetItem` (`items`): cached values of formulas, typed
   cells turned into the text a reader sees, dates resolved through the reviewed `date_cells` file,
   header typos read as the intended names; a row that cannot make a correct item carries its
   `problem`.
2. `pairing.pair_items` joins the languages: EN takes its subfield from ZH, ZH/EN answer keys must
   agree (else the whole group goes, both languages), an EN option filled in where ZH has none goes
   too, an EN explanation whose ZH says `略` is kept only if the recipe says so, and items that are
   the same question (ZH question + unordered options, punctuation and whitespace folded) share a
   group.
3. `formatting.entry_of` makes each answerable item one plain triple plus its structured fields
   (`RawItem.extra`), from which template expansion and the held-out benchmark are made.

`adapter.read_astro_qa` runs them over every question type present. Matching questions have no
answer key and are excluded deliberately.
"""

from __future__ import annotations

from .adapter import read_astro_qa
from .items import AstroQaOptions

__all__ = ["AstroQaOptions", "read_astro_qa"]
