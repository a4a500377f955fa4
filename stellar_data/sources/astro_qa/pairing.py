"""ZH/EN pairing: the EN workbooks are row-aligned translations, the same ID being the same item.

EN takes its subfield from ZH, ZH/EN answer keys must agree (else the whole group goes, both
languages), a ZH rejection that makes the translation wrong too takes the EN twin with it, an EN
explanation whose ZH says `略` is kept only if the recipe says so, and items that are the same
question (ZH question + unordered options, punctuation and whitespace folded) share a group so that
no split or held-out set sees one question twice. A repeated ID's later rows are rejected and
never paired.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace

from .items import AstroQaOptions, Kind, SheetItem

# Item problems in the ZH original that make its EN translation wrong too.
_PROPAGATE_TO_EN = {"empty_option", "bad_answer_key", "date_cell_quarantined", "unreviewed_date_cell"}


def _fold(text: str) -> str:
    """NFKC, lower case, without punctuation, whitespace and control characters: the duplicate key."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZC")


def _duplicate_key(item: SheetItem) -> tuple[str, ...]:
    return (item.kind.name, _fold(item.question), *sorted(_fold(t) for t in item.options.values()))


def _id_order(item_id: str) -> tuple[int, str]:
    return (int(item_id), "") if item_id.isdigit() else (1 << 62, item_id)


_ID_PROBLEMS = {"missing_id", "duplicate_id"}


def _is_id_problem(item: SheetItem) -> bool:
    return item.problem is not None and item.problem[0] in _ID_PROBLEMS


def _accepted_by_id(items: list[SheetItem]) -> dict[str, SheetItem]:
    """ID -> the row that owns it (a repeated ID's later rows are rejected and never paired)."""
    return {i.item_id: i for i in items if i.item_id and not i.deliberate and not _is_id_problem(i)}


def pair_items(zh: list[SheetItem], en: list[SheetItem], options: AstroQaOptions) -> list[SheetItem]:
    """Join one type's ZH and EN items by ID (see the module docstring); returns both, updated."""
    zh_by_id, en_by_id = _accepted_by_id(zh), _accepted_by_id(en)
    out_zh, out_en = [], []
    for item in zh:
        twin = en_by_id.get(item.item_id)
        if (
            item.problem is None
            and twin is not None
            and twin.problem is None
            and twin.answer != item.answer
            and item.kind.name != "subjective"
        ):
            item = replace(
                item, problem=("answer_key_mismatch", f"ZH answer {item.answer!r} != EN answer {twin.answer!r}")
            )
        out_zh.append(item)
    out_zh = _assign_groups(out_zh)
    zh_final = _accepted_by_id(out_zh)
    zh_groups = {item_id: item.group for item_id, item in zh_final.items()}
    for item in en:
        if item.deliberate or not item.item_id or _is_id_problem(item):
            out_en.append(item)
            continue
        twin = zh_by_id.get(item.item_id)
        if twin is None:
            item = replace(
                item,
                problem=item.problem or ("missing_zh_item", f"no ZH item with ID {item.item_id} (subfield unknown)"),
            )
        else:
            item = replace(item, subfield=twin.subfield, group=zh_groups[item.item_id])
            zh_problem = zh_final[item.item_id].problem
            if item.problem is None and zh_problem is not None:
                rule = zh_problem[0]
                if rule == "answer_key_mismatch":
                    item = replace(item, problem=zh_problem)
                elif rule in _PROPAGATE_TO_EN:
                    item = replace(item, problem=(f"{rule}_in_zh", f"the ZH original is rejected ({zh_problem[1]})"))
            if (
                item.problem is None
                and twin.problem is None
                and not twin.explanation
                and item.explanation
                and not options.en_only_explanations
            ):
                item = replace(item, explanation="")
        out_en.append(item)
    return out_zh + out_en


def _assign_groups(zh: list[SheetItem]) -> list[SheetItem]:
    """Group ZH items that are the same question; the group is named by its smallest ID."""
    first_id: dict[tuple[str, ...], str] = {}
    for item in sorted((i for i in zh if i.problem is None), key=lambda i: _id_order(i.item_id)):
        first_id.setdefault(_duplicate_key(item), item.item_id)
    return [
        replace(
            item, group=group_name(item.kind, first_id[_duplicate_key(item)] if item.problem is None else item.item_id)
        )
        for item in zh
    ]


def group_name(kind: Kind, item_id: str) -> str:
    return f"astro_qa:{kind.segment}:{item_id}"


def unpaired(en: list[SheetItem]) -> list[SheetItem]:
    """EN read alone: no subfield to take from ZH, no key to compare; groups by ID."""
    return [replace(item, group=group_name(item.kind, item.item_id)) for item in en]
