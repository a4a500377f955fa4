"""Evaluation items: one dataclass for every input format, and the loaders.

- `astro-qa`: the held-out Parquet of a built corpus (the corpus folder, its `astro_qa_heldout`
  folder or one of its files), schema in stellar_data/writers/heldout.py.
- `mc-csv`: multiple choice in CSV (`Question,A,B,C,D,Answer`, CMMLU / C-Eval style, an unnamed
  leading index column allowed), columns found through a mapping.
- `jsonl`: one JSON object per line, through the same mapping; `options` may also be a list.

A file-level problem (missing file or column, unreadable file, a bad answer key) raises
`EvalDataError` with one line naming the file, row and column.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stellar_data.text import detect_lang

from ..scoring import letters

FORMATS = ("astro-qa", "mc-csv", "jsonl")
OBJECTIVE = ("single_choice", "judgment", "multi_select")
LETTERS = "ABCDE"
MAPPING_KEYS = ("id", "group", "question", "answer", "options", "type", "subfield", "lang", "prompt", *LETTERS)
_TRUE = {"true", "t", "yes", "y", "1", "对", "正确", "是"}
_FALSE = {"false", "f", "no", "n", "0", "错", "错误", "否"}


class EvalDataError(ValueError):
    """An evaluation file that cannot be read or does not have what an item needs."""


@dataclass(frozen=True)
class EvalItem:
    id: str
    group: str
    type: str
    """single_choice_<n> (n options), multi_select, judgment or subjective."""
    subfield: str
    lang: str
    question: str
    options: tuple[tuple[str, str], ...]
    """(label, text) pairs, labels A, B, ... in order."""
    answer: str
    """Letters (`C`, `BD`), `true` / `false` for a judgment, or the reference text."""
    source: str = ""
    type_label: str = ""
    prompt: str = ""
    """The benchmark's own prompt for a subjective item (Astro-QA), used instead of the plain form."""

    @property
    def kind(self) -> str:
        """The scoring family: single_choice, multi_select, judgment or subjective."""
        return "single_choice" if self.type.startswith("single_choice") else self.type


def detect_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    return {".csv": "mc-csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(suffix, "astro-qa")


def parse_mapping(text: str | None) -> dict[str, str]:
    """`question=Question,answer=Answer,A=opt1` -> {"question": "Question", ...}."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, column = part.partition("=")
        key = key.strip()
        if not sep or not column.strip():
            raise EvalDataError(f"--map {part!r}: use key=column")
        if key not in MAPPING_KEYS:
            raise EvalDataError(f"--map {key!r}: unknown key (keys: {', '.join(MAPPING_KEYS)})")
        mapping[key] = column.strip()
    return mapping


def load_items(path: str | Path, fmt: str | None = None, mapping: dict[str, str] | None = None) -> list[EvalItem]:
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise EvalDataError(f"--eval-format {fmt!r}: use one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise EvalDataError(f"{path}: no such file or folder")
    items = {"astro-qa": load_astro_qa, "mc-csv": load_mc_csv, "jsonl": load_jsonl}[fmt](path, mapping or {})
    if not items:
        raise EvalDataError(f"{path}: no evaluation items")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise EvalDataError(f"{path}: item id {item.id!r} appears twice (ids key the resumable results)")
        seen.add(item.id)
    return items


# -- astro-qa ---------------------------------------------------------------------------------------

HELDOUT_COLUMNS = ("id", "group", "type", "subfield", "lang", "question", "prompt", "options", "answer")
ASTRO_TYPES = ("single_choice_4", "single_choice_5", "multi_select", "judgment", "subjective")


def heldout_files(path: Path) -> list[Path]:
    """The held-out Parquet files for a corpus folder, its astro_qa_heldout folder or a file."""
    if path.is_file():
        return [path]
    folder = path / "astro_qa_heldout" if (path / "astro_qa_heldout").is_dir() else path
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise EvalDataError(f"{path}: no astro_qa_heldout/*.parquet (not a built corpus or its held-out folder)")
    return files


def load_astro_qa(path: Path, mapping: dict[str, str]) -> list[EvalItem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    del mapping  # the held-out schema is fixed
    items = []
    for file in heldout_files(path):
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowInvalid) as exc:
            raise EvalDataError(f"{file}: cannot read as Parquet ({exc})") from None
        missing = [c for c in HELDOUT_COLUMNS if c not in table.column_names]
        if missing:
            raise EvalDataError(f"{file}: missing column(s) {', '.join(missing)} (not an astro_qa_heldout file)")
        for row, record in enumerate(table.to_pylist()):
            if record["type"] not in ASTRO_TYPES:
                raise EvalDataError(f"{file}: row {row}: column type: unknown question type {record['type']!r}")
            items.append(
                EvalItem(
                    id=record["id"],
                    group=record["group"],
                    type=record["type"],
                    subfield=record["subfield"],
                    lang=record["lang"],
                    question=record["question"],
                    options=tuple((o["label"], o["text"]) for o in record["options"]),
                    answer=record["answer"],
                    source=record.get("source") or "astro_qa",
                    type_label=record.get("type_label") or "",
                    prompt=record["prompt"] or "",
                )
            )
    return items


# -- mc-csv and jsonl -------------------------------------------------------------------------------


def _resolve(mapping: dict[str, str], columns: list[str], key: str) -> str | None:
    """The column for `key`: the mapped one, else a column named like the key (any case)."""
    if key in mapping:
        return mapping[key]
    by_lower = {c.lower(): c for c in columns}
    return by_lower.get(key.lower())


def _answer(raw: Any, labels: list[str], where: str, column: str) -> tuple[str, str]:
    """(type, answer) from a raw answer cell: letters among the options, or a true/false verdict."""
    text = str(raw if raw is not None else "").strip()
    if not labels:
        if text.lower() in _TRUE:
            return "judgment", "true"
        if text.lower() in _FALSE:
            return "judgment", "false"
        if not text:
            raise EvalDataError(f"{where}: column {column}: empty answer")
        return "subjective", text
    chosen = letters(text.upper()) if len(text) <= 16 else ""
    if not chosen or any(c not in labels for c in chosen):
        raise EvalDataError(f"{where}: column {column}: answer {text!r} is not among the options {''.join(labels)}")
    return ("multi_select" if len(chosen) > 1 else f"single_choice_{len(labels)}"), chosen


def _family(item_type: str) -> str:
    return "single_choice" if item_type.startswith("single_choice") else item_type


_FITS = {
    "single_choice": {"single_choice", "multi_select"},  # a multi-select item may have one right option
    "multi_select": {"multi_select"},
    "judgment": {"judgment"},
    "subjective": {"subjective"},
}
"""The types a declared `type` may be, given what the answer says the item is."""


def item_from_row(
    row: dict[str, Any], mapping: dict[str, str], where: str, *, default_id: str, subfield: str, source: str
) -> EvalItem:
    """One item from a CSV row or JSON object; `where` names the file and row in errors."""
    columns = list(row)
    question_col, answer_col = _resolve(mapping, columns, "question"), _resolve(mapping, columns, "answer")
    for key, column in (("question", question_col), ("answer", answer_col)):
        if column is None or column not in row:
            raise EvalDataError(f"{where}: no {key} column {column or key!r} (columns: {', '.join(columns)})")
    question = str(row[question_col] or "").strip()
    if not question:
        raise EvalDataError(f"{where}: column {question_col}: empty question")
    options: list[tuple[str, str]] = []
    listed = _resolve(mapping, columns, "options")
    if listed is not None and listed in row and row[listed] is not None:
        values = row[listed]
        if not isinstance(values, list):
            raise EvalDataError(f"{where}: column {listed}: options must be a list, got {type(values).__name__}")
        if len(values) > len(LETTERS):
            raise EvalDataError(f"{where}: column {listed}: {len(values)} options, at most {len(LETTERS)}")
        for label, option in zip(LETTERS, values, strict=False):
            if isinstance(option, dict) and "text" not in option:
                raise EvalDataError(f"{where}: column {listed}: option {label} has no `text`")
            options.append((label, str(option["text"] if isinstance(option, dict) else option).strip()))
    else:
        for label in LETTERS:
            column = _resolve(mapping, columns, label)
            if column is not None and column in row and str(row[column] or "").strip():
                options.append((label, str(row[column]).strip()))
    labels = [label for label, _ in options]
    if labels and labels != list(LETTERS[: len(labels)]):
        raise EvalDataError(f"{where}: options {''.join(labels)}: they must be A, B, ... without gaps")
    kind, answer = _answer(row[answer_col], labels, where, answer_col)

    def field(key: str, default: str) -> str:
        column = _resolve(mapping, columns, key)
        value = row.get(column) if column is not None else None
        return str(value).strip() if value not in (None, "") else default

    item_id = field("id", default_id)
    item_type = field("type", kind)
    if _family(item_type) not in _FITS[_family(kind)]:
        raise EvalDataError(f"{where}: column type: {item_type!r} does not fit the answer {answer!r} ({kind})")
    return EvalItem(
        id=item_id,
        group=field("group", item_id),
        type=item_type,
        subfield=field("subfield", subfield),
        lang=field("lang", detect_lang(question, *(t for _, t in options))),
        question=question,
        options=tuple(options),
        answer=answer,
        source=source,
        prompt=field("prompt", ""),
    )


def load_mc_csv(path: Path, mapping: dict[str, str]) -> list[EvalItem]:
    """CSV multiple choice; a leading column with an empty name (a pandas index) is ignored."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise EvalDataError(f"{path}: empty CSV (no header row)")
            header = [h.strip() for h in header]
            if header[0] in ("", "Unnamed: 0"):
                header[0] = "_index"
            rows = []
            for number, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise EvalDataError(f"{path}: line {number}: {len(values)} fields, the header has {len(header)}")
                rows.append((number, dict(zip(header, values, strict=True))))
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise EvalDataError(f"{path}: malformed CSV ({exc})") from None
    return [
        item_from_row(
            row,
            mapping,
            f"{path}: line {number}",
            default_id=f"{path.stem}:{index}",
            subfield=path.stem,
            source=f"mc-csv:{path.name}",
        )
        for index, (number, row) in enumerate(rows)
    ]


def load_jsonl(path: Path, mapping: dict[str, str]) -> list[EvalItem]:
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise EvalDataError(f"{path}: line {number}: not a JSON object")
        items.append(
            item_from_row(
                row,
                mapping,
                f"{path}: line {number}",
                default_id=f"{path.stem}:{len(items)}",
                subfield=path.stem,
                source=f"jsonl:{path.name}",
            )
        )
    return items
