"""Fuzz: junk for every adapter, through the public per-file entry point (`ingest`).

Every case ends in quarantine rows (each with its rule and its location in the file's convention:
`line N` for JSON Lines and CSV, `item N` for JSON arrays, `row N` for Parquet, `row N (ID x)` for
Astro-QA sheets) or in exactly one SourceFileError, one line naming the file; never in another
exception. And the counts reconcile: items read = records kept + quarantine rows. The random cases
use fixed seeds: the suite is deterministic.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stellar_data as sd
from stellar_data.config import from_table
from stellar_data.errors import SourceFileError
from stellar_data.ingest import IngestResult, IngestTask, ingest
from stellar_data.recipe import SourceSpec
from stellar_data.record import RAW_EXCERPT_CHARS
from stellar_data.sources import ADAPTERS
from tests.helpers import alpaca_recipe, source_file

MAPPING = {"instruction": "prompt", "output": "response"}
GOOD: dict[str, dict[str, Any]] = {
    "alpaca": {"instruction": "What is a pulsar?", "input": "", "output": "A rotating neutron star."},
    "gsm8k": {"question": "What is 2 + 2?", "answer": "Add them: 2 + 2 = 4.\n#### 4"},
    "identity": {"instruction": "Who are you?", "input": "", "output": "I am {{name}}."},
    "generic": {"prompt": "Define parallax.", "response": "The apparent shift of a star."},
}
FIRST_FIELD = {"alpaca": "instruction", "gsm8k": "question", "identity": "instruction", "generic": "prompt"}
DEEP = "[" * 100_000 + "]" * 100_000
KNOWN_RULES = {
    "malformed_json", "invalid_utf8", "invalid_unicode", "too_deep", "number_too_long", "duplicate_key",
    "not_an_object", "missing_field", "wrong_type", "no_final_answer", "malformed_csv",
}  # fmt: skip
LOCATIONS = {"jsonl": r"line [1-9]\d*", "json": r"item \d+", "csv": r"line [1-9]\d*", "parquet": r"row \d+"}


@dataclass
class Outcome:
    name: str
    result: IngestResult | None = None
    error: SourceFileError | None = None

    @property
    def quarantined(self) -> list[tuple[str, str]]:
        assert self.result is not None, f"expected quarantine rows, got the file error: {self.error}"
        return self.result.quarantine.sort("row").select("location", "rule").rows()


def run(tmp_path: Path, adapter: str, name: str, data: bytes, options: dict[str, Any] | None = None) -> Outcome:
    """Ingest one file; a SourceFileError is an outcome, any other exception fails the test."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if options is None:
        options = {"columns": MAPPING} if adapter == "generic" else {}
    spec = SourceSpec(name="s", adapter=adapter, paths=(name,), category="general", lang="en", order=0,
                      options=from_table(ADAPTERS[adapter].options, options))  # fmt: skip
    try:
        outcome = Outcome(name, result=ingest(IngestTask(spec, source_file(path, tmp_path), 0, 1, ())))
    except SourceFileError as error:
        outcome = Outcome(name, error=error)
    check(outcome, Path(name).suffix.lstrip(".") or "jsonl")
    return outcome


def check(outcome: Outcome, fmt: str) -> None:
    """The invariants of every outcome (see the module docstring)."""
    if outcome.error is not None:
        message = str(outcome.error)
        assert message.startswith(f"{outcome.name}: ") and "\n" not in message, message
        return
    result = outcome.result
    assert result is not None and result.records is not None
    read = result.stats[0]
    assert read.reconciles
    assert read.total == result.records.height + result.quarantine.height
    pattern = LOCATIONS.get(fmt, r"row \d+ \(ID [^)]*\)")
    for where in result.records["_location"].to_list():  # kept records carry theirs for later quarantine rows
        assert re.fullmatch(pattern, where), where
    for row in result.quarantine.iter_rows(named=True):
        assert row["rule"] in KNOWN_RULES or re.fullmatch(r"invalid_\w+", row["rule"]), row
        assert re.fullmatch(pattern, row["location"]), row
        assert "\n" not in row["message"], row
        assert row["raw"] is None or len(row["raw"]) <= RAW_EXCERPT_CHARS
        if fmt == "jsonl":
            assert row["location"] == f"line {row['row'] + 1}", row
        elif fmt == "json":
            assert row["location"] == f"item {row['row']}", row


def line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def extended(adapter: str, extra: str) -> str:
    """The adapter's good record with `extra` (JSON text: `"key": value`) added at its end."""
    return line(GOOD[adapter])[:-1] + ", " + extra + "}"


def with_field(adapter: str, value: Any) -> str:
    return line({**GOOD[adapter], FIRST_FIELD[adapter]: value})


def bad_lines(adapter: str) -> list[tuple[str, str]]:
    """(a bad JSON Lines line, the rule that quarantines it) for one adapter."""
    first = FIRST_FIELD[adapter]
    missing = "missing_field" if adapter in ("alpaca", "generic") else "wrong_type"
    return [
        (extended(adapter, '"\\ud800": 1'), "invalid_unicode"),
        (with_field(adapter, "@").replace('"@"', '"x\\udc00"'), "invalid_unicode"),
        (extended(adapter, f'"x": {DEEP}'), "too_deep"),
        (DEEP, "too_deep"),
        (extended(adapter, '"n": ' + "9" * 5000), "number_too_long"),
        (extended(adapter, f'"{first}": "again"'), "duplicate_key"),
        (line(GOOD[adapter]).replace(" ", "\x00", 1), "malformed_json"),  # a raw NUL byte
        (line(GOOD[adapter])[:17], "malformed_json"),  # truncated
        (with_field(adapter, 42), "wrong_type"),
        (with_field(adapter, None), "wrong_type"),
        (with_field(adapter, {"nested": ["x"]}), "wrong_type"),
        (line({k: v for k, v in GOOD[adapter].items() if k != first}), missing),
        ("[1, 2]", "not_an_object"),
        ('"just text"', "not_an_object"),
    ]


JSON_ADAPTERS = ["alpaca", "gsm8k", "identity", "generic"]


@pytest.mark.parametrize("adapter", JSON_ADAPTERS)
def test_each_bad_json_lines_line_costs_only_its_line(tmp_path: Path, adapter: str) -> None:
    cases = bad_lines(adapter)
    assert cases
    good = line(GOOD[adapter])
    for index, (bad, rule) in enumerate(cases):
        outcome = run(tmp_path, adapter, f"case{index}.jsonl", f"{good}\n{bad}\n{good}\n".encode())
        assert outcome.quarantined == [("line 2", rule)], (bad[:80], outcome.quarantined)
        assert outcome.result is not None and outcome.result.records is not None
        assert outcome.result.records["source_row"].to_list() == [0, 2]


@pytest.mark.parametrize("adapter", JSON_ADAPTERS)
def test_each_bad_json_array_item_costs_only_its_item(tmp_path: Path, adapter: str) -> None:
    cases = [(bad, rule) for bad, rule in bad_lines(adapter) if rule != "malformed_json"]
    assert cases
    good = line(GOOD[adapter])
    for index, (bad, rule) in enumerate(cases):
        outcome = run(tmp_path, adapter, f"case{index}.json", f"[{good},\n {bad},\n {good}]".encode())
        assert outcome.quarantined == [("item 1", rule)], (bad[:80], outcome.quarantined)


@pytest.mark.parametrize("adapter", ["alpaca", "identity", "generic"])
@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_records_the_schema_refuses_are_quarantined_where_the_adapter_found_them(
    tmp_path: Path, adapter: str, suffix: str
) -> None:
    good = line(GOOD[adapter])
    empty, huge = with_field(adapter, ""), with_field(adapter, "x" * 200_000)  # the schema: 1 to 100,000 characters
    rule = "invalid_instruction"
    items = [good, empty, good, huge]
    text = "\n".join(items) + "\n" if suffix == "jsonl" else "[" + ",\n".join(items) + "]"
    outcome = run(tmp_path, adapter, f"data.{suffix}", text.encode())
    where = (lambda row: f"line {row + 1}") if suffix == "jsonl" else (lambda row: f"item {row}")
    assert outcome.quarantined == [(where(1), rule), (where(3), rule)]


@pytest.mark.parametrize("adapter", JSON_ADAPTERS)
def test_json_files_with_encoding_and_layout_quirks(tmp_path: Path, adapter: str) -> None:
    good = line(GOOD[adapter])
    nul = with_field(adapter, "text with a \\u0000 NUL escape")
    assert run(tmp_path, adapter, "bom.jsonl", f"\ufeff{good}\r\n\r\n{good}\r\n".encode()).quarantined == []
    assert run(tmp_path, adapter, "nul.jsonl", f"{nul}\n".encode()).quarantined == []
    cut = run(tmp_path, adapter, "cut.jsonl", f"{good}\n{good}\n{good[:-9]}".encode())
    assert cut.quarantined == [("line 3", "malformed_json")]
    bad_bytes = run(tmp_path, adapter, "bytes.jsonl", f"{good}\n".encode() + b'{"a": "\xff"}\n' + good.encode())
    assert bad_bytes.quarantined == [("line 2", "invalid_utf8")]
    for name, data, message in [
        ("empty.jsonl", b"", "file is empty"),
        ("blank.json", b" \n\r\n ", "file is empty"),
        ("words.jsonl", b"hello\nworld\n", "not JSON or JSON Lines"),
        ("cut.json", f"[{good}, {good[:-9]}".encode(), "invalid JSON at line 1"),
        ("object.json", json.dumps(GOOD[adapter], indent=2).encode(), "not JSON or JSON Lines"),
    ]:
        outcome = run(tmp_path, adapter, name, data)
        assert outcome.error is not None and message in str(outcome.error), (name, outcome)


# --- CSV -----------------------------------------------------------------------------------------


CSV_OPTIONS = {"columns": {"instruction": "Q", "output": "A"}}


def run_csv(tmp_path: Path, name: str, text: str) -> Outcome:
    return run(tmp_path, "generic", name, text.encode(), CSV_OPTIONS)


def test_csv_junk_costs_only_its_record(tmp_path: Path) -> None:
    huge = "x" * 200_000  # over csv's default field limit, and over the schema's 100,000 characters
    cases = [
        (f"Q,A\nq1,a1\nq2,{huge}\nq3,a3\n", [("line 3", "invalid_output")]),
        ('Q,A\nq1,a1\n"q2,a2\nq3,a3\nq4,a4\n', [("line 3", "malformed_csv")]),
        ('Q,A\nq1,"multi\nline"\n,"empty\ninstruction"\nq4,a4\n', [("line 4", "invalid_instruction")]),
        ("Q,A\nq1,a1,extra\nq2\nq3,a3\n", [("line 2", "malformed_csv"), ("line 3", "malformed_csv")]),
        ("\ufeffQ,A\r\nq\x00,a\r\n\r\nq2,a2\r\n", []),
        ("Q,A\nq1,a1\nq2,a", []),  # no final newline
        ("Q,A\nq1,a1\nq2", [("line 3", "malformed_csv")]),  # cut short
    ]
    for index, (text, expected) in enumerate(cases):
        assert run_csv(tmp_path, f"case{index}.csv", text).quarantined == expected, text[:60]
    bad_bytes = run(tmp_path, "generic", "bytes.csv", b"Q,A\nq1,a1\nq\xff,a\n", CSV_OPTIONS)
    assert bad_bytes.quarantined == [("line 3", "invalid_utf8")]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "not in the file's header []"), ("Q,A,A\nq,a,b\n", "appear more than once"), ("X,Y\n1,2\n", "'Q', 'A'")],
)
def test_csv_file_level_problems_are_one_error(tmp_path: Path, text: str, message: str) -> None:
    outcome = run_csv(tmp_path, "bad.csv", text)
    assert outcome.error is not None and message in str(outcome.error)


# --- Parquet --------------------------------------------------------------------------------------


def write_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_parquet_values_of_the_wrong_type_are_quarantined_row_by_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "prompt": pa.array(["q0", None, "q\x002", "q3", ""], type=pa.string()),
            "response": pa.array(["a0", "a1", "a2", "x" * 200_000, "a4"], type=pa.string()),
        }
    )
    outcome = run(tmp_path, "generic", "data.parquet", write_parquet(table))
    assert outcome.quarantined == [
        ("row 1", "wrong_type"),
        ("row 3", "invalid_output"),
        ("row 4", "invalid_instruction"),
    ]
    numbers = pa.table({"prompt": [1, 2], "response": ["a", "b"]})
    assert run(tmp_path, "generic", "numbers.parquet", write_parquet(numbers)).quarantined == [
        ("row 0", "wrong_type"), ("row 1", "wrong_type"),
    ]  # fmt: skip


def test_a_parquet_file_cut_short_or_of_junk_is_one_error(tmp_path: Path) -> None:
    data = write_parquet(pa.table({"prompt": ["q"] * 100, "response": ["a"] * 100}))
    rng = random.Random(7)
    for name, junk in [("cut.parquet", data[: len(data) // 2]), ("junk.parquet", rng.randbytes(3000)),
                       ("empty.parquet", b"")]:  # fmt: skip
        outcome = run(tmp_path, "generic", name, junk)
        assert outcome.error is not None, name


# --- Astro-QA ------------------------------------------------------------------------------------


def workbook(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    book.active.append(header)
    for row in rows:
        book.active.append(row)
    book.save(path)


def test_astro_qa_junk_rows_are_quarantined_with_their_sheet_locations(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    workbook(folder / "ZH/judgment_ZH.xlsx", ["ID", "Subfield", "Question", "Answer", "Parse"], [
        [1, "天文学史", "太阳是恒星", "对", "略"],
        [2, "天文学史", None, "对", "略"],
        [3, "天文学史", "月球是行星", "也许", "略"],
        [4, "天文学史", 12345, "错", "x" * 200_000],
        [5, "天文学史", "地球是行星", "对", "略"],
    ])  # fmt: skip
    workbook(folder / "EN/judgment_EN.xlsx", ["ID", "Question", "Answer", "Parse"], [
        [1, "The Sun is a star", True, "Omitted"],
        [2, None, True, "Omitted"],
        [3, "The Moon is a planet", "maybe", "Omitted"],
        [4, 12345, False, "Omitted"],
        [5, "Earth is a planet", True, "Omitted"],
    ])  # fmt: skip
    spec = SourceSpec(name="astro", adapter="astro_qa", paths=("data",), category="astronomy", lang="auto", order=0)
    result = ingest(IngestTask(spec, source_file(folder, tmp_path), 0, 1, ()))
    read = result.stats[0]
    assert read.total == 10 and read.reconciles
    assert result.records is not None and read.total == result.records.height + result.quarantine.height
    assert result.quarantine.select("file", "location", "rule").rows() == [
        ("data/ZH/judgment_ZH.xlsx", "row 3 (ID 2)", "empty_question"),
        ("data/ZH/judgment_ZH.xlsx", "row 4 (ID 3)", "bad_answer_key"),
        ("data/EN/judgment_EN.xlsx", "row 3 (ID 2)", "empty_question"),
        ("data/EN/judgment_EN.xlsx", "row 4 (ID 3)", "bad_answer_key"),
    ]


def test_an_astro_qa_workbook_of_junk_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "data/ZH").mkdir(parents=True)
    (tmp_path / "data/EN").mkdir(parents=True)
    (tmp_path / "data/ZH/judgment_ZH.xlsx").write_bytes(random.Random(3).randbytes(5000))
    workbook(tmp_path / "data/EN/judgment_EN.xlsx", ["ID", "Question", "Answer", "Parse"], [[1, "q", True, ""]])
    spec = SourceSpec(name="astro", adapter="astro_qa", paths=("data",), category="astronomy", lang="auto", order=0)
    with pytest.raises(SourceFileError, match=r"^data/ZH/judgment_ZH\.xlsx: ") as error:
        ingest(IngestTask(spec, source_file(tmp_path / "data", tmp_path), 0, 1, ()))
    assert "\n" not in str(error.value)


# --- random junk -----------------------------------------------------------------------------------


def junk_line(rng: random.Random, adapter: str) -> str:
    good = line(GOOD[adapter])
    choice = rng.randrange(12)
    if choice == 0:
        return good[: rng.randrange(len(good))]
    if choice == 1:
        at = rng.randrange(len(good))
        return good[:at] + rng.choice('"{}[],:\\\x00\t') + good[at + 1 :]
    if choice == 2:
        depth = rng.choice([10, 900, 1100, 5000])
        return extended(adapter, f'"x": {"[" * depth}{"]" * depth}')
    if choice == 3:
        return extended(adapter, '"n": ' + "1" * rng.choice([20, 400, 4301, 9000]))
    if choice == 4:
        return extended(adapter, rng.choice(['"k": "\\ud83d"', '"k": "\\ud83d\\ude00"', '"\\udc00": 0']))
    if choice == 5:
        return extended(adapter, f'"{FIRST_FIELD[adapter]}" : "dup"')
    if choice == 6:
        return with_field(adapter, rng.choice([None, 0, -1.5, True, [], {}, ["a"], "", " ", "\u200d", "x" * 150_000]))
    if choice == 7:
        return "".join(rng.choice('ab"\\{}[]:, \u661f\r\x00') for _ in range(rng.randrange(30)))
    if choice == 8:
        return rng.choice(["", "   ", "\u3000", "null", "[]", "{}", "1e999", "NaN", "-0"])
    return good


@pytest.mark.parametrize("adapter", JSON_ADAPTERS)
@pytest.mark.parametrize("seed", range(4))
def test_random_json_lines_junk_never_raises_anything_but_a_file_error(tmp_path: Path, adapter: str, seed: int) -> None:
    rng = random.Random(f"{adapter}:{seed}")
    lines = [junk_line(rng, adapter) for _ in range(40)]
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    outcome = run(tmp_path, adapter, "junk.jsonl", data)
    if outcome.result is not None:
        assert outcome.result.stats[0].total == sum(1 for text in lines if text.strip(" \t\r\u3000"))


@pytest.mark.parametrize("adapter", JSON_ADAPTERS)
@pytest.mark.parametrize("seed", range(4))
def test_random_json_array_junk_never_raises_anything_but_a_file_error(tmp_path: Path, adapter: str, seed: int) -> None:
    rng = random.Random(f"array:{adapter}:{seed}")
    items = [junk_line(rng, adapter) for _ in range(30)]
    if seed % 2:  # only items that parse: the array is read item by item where orjson refuses it
        items = [item for item in items if _parses(item)]
    run(tmp_path, adapter, "junk.json", ("[" + ",\n".join(items) + "]").encode("utf-8", "surrogatepass"))


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@pytest.mark.parametrize("seed", range(6))
def test_random_csv_junk_never_raises_anything_but_a_file_error(tmp_path: Path, seed: int) -> None:
    rng = random.Random(f"csv:{seed}")
    cell = "".join
    rows = ["Q,A"] + [
        ",".join(
            cell(rng.choice('ab"\n\r,\x00 星') for _ in range(rng.randrange(8))) for _ in range(rng.randrange(1, 4))
        )
        for _ in range(40)
    ]
    text = "\n".join(rows)
    outcome = run_csv(tmp_path, "junk.csv", text)
    assert outcome.result is not None  # the header is good: junk rows are never a file error
    lines = len(re.findall(r"\r\n|\r|\n", text)) + 1
    for location in outcome.result.quarantine["location"]:
        assert 2 <= int(location.split()[1]) <= lines


# --- a whole build -------------------------------------------------------------------------------


def test_a_build_over_junk_writes_the_good_records_and_quarantines_the_rest_by_line(tmp_path: Path) -> None:
    good = line(GOOD["alpaca"])
    lines = [
        good,
        extended("alpaca", '"\\ud800": 1'),
        extended("alpaca", f'"x": {DEEP}'),
        extended("alpaca", '"n": ' + "9" * 5000),
        extended("alpaca", '"instruction": "again"'),
        with_field("alpaca", ""),
        with_field("alpaca", "Another question?"),
    ]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    recipe = alpaca_recipe(tmp_path / "src", extra="[quality]\nmax_quarantine_ratio = 1.0")
    recipe.write_text(recipe.read_text(encoding="utf-8").replace("data.json", "data.jsonl"), encoding="utf-8")
    corpus = sd.build(recipe, out=tmp_path / "out", workers=1)
    quarantine = pl.read_parquet(corpus.path / "quarantine.parquet").sort("row")
    assert quarantine.select("location", "rule").rows() == [
        ("line 2", "invalid_unicode"), ("line 3", "too_deep"), ("line 4", "number_too_long"),
        ("line 5", "duplicate_key"), ("line 6", "invalid_instruction"),
    ]  # fmt: skip
    records = pl.read_parquet(corpus.path / "data")
    assert records.columns == list(sd.RECORD_SCHEMA.names)
    assert sorted(records["source_row"].to_list()) == [0, 6]
