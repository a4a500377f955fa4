"""validate: every record against schemas/record.schema.json; failures carry rule and message.

The vectorized pre-filter must never let through a record that jsonschema rejects: the tests
compare the set of rejected rows with jsonschema's own verdict, record by record.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import jsonschema
import polars as pl
import pyarrow as pa
import pytest

from stellar_data.record import RECORD_SCHEMA
from stellar_data.resources import load_schema
from stellar_data.steps.assemble import LOCATION_COLUMN
from stellar_data.steps.validate import RecordValidator

SCHEMA = load_schema("record.schema.json")


def record(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "general:0",
        "instruction": "Explain black holes.",
        "input": "",
        "output": "A black hole is ...",
        "category": "general",
        "source": "general",
        "lang": "en",
        "group": "general:0",
        "source_file": "data.json",
        "source_row": 0,
        "template_id": None,
        "original_id": None,
        "copy_index": 0,
    }
    base.update(changes)
    return base


def frame_of(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA))


def run(rows: list[dict[str, Any]], schema: dict[str, Any] = SCHEMA):
    return RecordValidator(schema)(frame_of(rows), "general")


def rejected_ids(rows: list[dict[str, Any]], schema: dict[str, Any]) -> tuple[set[int], set[int]]:
    """(rows the validator rejects, rows jsonschema rejects), as indexes into `rows`."""
    frame = frame_of(rows).with_row_index("_probe")
    valid, failures, stats = RecordValidator(schema)(frame, "general")
    assert stats.reconciles
    assert stats.total == len(rows) and stats.kept == valid.height
    kept = set(valid["_probe"].to_list())
    got = set(range(len(rows))) - kept
    assert got == {f[0]["_probe"] for f in failures}
    reference = jsonschema.Draft202012Validator(schema)
    expected = {i for i, r in enumerate(rows) if not reference.is_valid(r)}
    return got, expected


# --- single-rule spec ---------------------------------------------------------------------------


def test_valid_rows_are_kept_unchanged() -> None:
    rows = [
        record(),
        record(
            id="astro_qa_zh:4opt:442",
            lang="zh",
            category="astronomy",
            source="astro_qa_zh",
            group="astro_qa:4opt:442",
            source_row=441,
            template_id="t3",
            original_id="442",
            copy_index=2,
        ),
    ]
    valid, failures, stats = run(rows)
    assert failures == []
    assert valid.equals(frame_of(rows))
    assert (stats.step, stats.source, stats.total, stats.kept, dict(stats.dropped)) == ("validate", "general", 2, 2, {})


@pytest.mark.parametrize(
    ("changes", "rule", "field"),
    [
        ({"output": ""}, "invalid_output", "output"),
        ({"instruction": ""}, "invalid_instruction", "instruction"),
        ({"lang": "fr"}, "invalid_lang", "lang"),
        ({"category": "General!"}, "invalid_category", "category"),
        ({"id": "general 0"}, "invalid_id", "id"),
        ({"id": "general:a b"}, "invalid_id", "id"),
        ({"id": None}, "invalid_id", "id"),
        ({"source": "astro-qa"}, "invalid_source", "source"),
        ({"group": ""}, "invalid_group", "group"),
        ({"source_file": ""}, "invalid_source_file", "source_file"),
        ({"source_row": -1}, "invalid_source_row", "source_row"),
        ({"source_row": None}, "invalid_source_row", "source_row"),
        ({"copy_index": -1}, "invalid_copy_index", "copy_index"),
    ],
)
def test_invalid_row_is_rejected_with_rule_and_message_naming_the_field(changes: dict, rule: str, field: str) -> None:
    rows = [
        record(id="general:0", source_row=0),
        record(id="general:1", source_row=1),
        record(id="general:2", source_row=2),
    ]
    rows[1].update(changes)
    valid, failures, stats = run(rows)
    assert valid["id"].to_list() == ["general:0", "general:2"]
    assert len(failures) == 1
    failed, got_rule, message = failures[0]
    assert got_rule == rule
    assert message.startswith(f"{field}: ")
    assert failed["instruction"] == rows[1]["instruction"]
    assert dict(stats.dropped) == {rule: 1}
    assert (stats.total, stats.kept) == (3, 2)
    assert stats.reconciles


def test_message_lists_every_problem_and_rule_names_the_first_field() -> None:
    _, failures, stats = run([record(output="", lang="fr", category="General!")])
    [(_, rule, message)] = failures
    assert rule == "invalid_category"  # fields in sorted order: category < lang < output
    assert "category: " in message and "lang: " in message and "output: " in message
    assert "'fr' is not one of ['zh', 'en']" in message
    assert dict(stats.dropped) == {"invalid_category": 1}


def test_empty_input_is_valid() -> None:
    valid, failures, _ = run([record(input="")])
    assert failures == [] and valid.height == 1


def test_nullable_lineage_is_valid() -> None:
    valid, failures, _ = run([record(template_id=None, original_id=None), record(template_id="t1", original_id="")])
    assert failures == [] and valid.height == 2


def test_too_long_id_is_rejected() -> None:
    _, failures, _ = run([record(id="s:" + "x" * 299)])
    assert [f[1] for f in failures] == ["invalid_id"]
    valid, failures, _ = run([record(id="s:" + "x" * 298)])
    assert failures == [] and valid.height == 1


def test_frame_lacking_a_property_is_an_error() -> None:
    with pytest.raises(ValueError, match="copy_index"):
        RecordValidator(SCHEMA)(frame_of([record()]).drop("copy_index"), "general")


def test_extra_frame_columns_are_ignored_and_kept() -> None:
    frame = frame_of([record(), record(output="")]).with_columns(pl.lit(1).alias("_extra"))
    valid, failures, _ = RecordValidator(SCHEMA)(frame, "general")
    assert valid.columns == frame.columns
    assert valid.height == 1 and len(failures) == 1


def test_invalid_schema_is_refused() -> None:
    with pytest.raises(jsonschema.SchemaError):
        RecordValidator({"type": "object", "properties": {"id": {"type": "text"}}})


# --- the pre-filter agrees with jsonschema ------------------------------------------------------

# (valid values, invalid values) per field; some "invalid-looking" values are valid per jsonschema and
# the other way round: the comparison with jsonschema decides.
POOLS: dict[str, tuple[list[Any], list[Any]]] = {
    "id": (
        ["s:1", "astro_qa_zh:4opt:442", "S_1:x:y", "s:\u00e9", "s:a-b", "s:" + "x" * 298],
        [
            "s: 1",
            "s:",
            "",
            ":x",
            "s",
            "s::x",
            "s:a\tb",
            "s-1:x",
            "s:a\u3000b",
            "s:a\u00a0b",
            "s:a\nb",
            "s:a\n",
            "s:" + "x" * 299,
            "\u00e9:x",
            None,
        ],
    ),
    "instruction": (["q", "问题", "x" * 20, " "], ["", "x" * 21, None]),
    "input": (["", "x", "y" * 20], ["y" * 21, None]),
    "output": (["a", "z" * 20, "答"], ["", "z" * 21, None]),
    "category": (["general", "astronomy", "a_b1", "m"], ["General!", "1abc", "", "_a", "general\n", "gen eral", None]),
    "source": (["s", "astro_qa_zh", "S1"], ["bad-name", "", "s s", "s\n", None]),
    "lang": (["zh", "en"], ["fr", "", "ZH", " en", None]),
    "group": (["g", "astro_qa:4opt:1"], ["", None]),
    "source_file": (["f.json", "a b/c.xlsx"], ["", None]),
    "source_row": ([0, 5, 2**40], [-1, -(2**40), None]),
    "template_id": ([None, "t3", ""], []),
    "original_id": ([None, "442", ""], []),
    "copy_index": ([0, 2], [-3, None]),
}


def crafted_records(n: int, seed: int, p_invalid: float = 0.07) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {}
        for name, (good, bad) in POOLS.items():
            pool = bad if bad and rng.random() < p_invalid else good
            row[name] = rng.choice(pool)
        rows.append(row)
    return rows


def small_schema() -> dict[str, Any]:
    schema = copy.deepcopy(SCHEMA)
    for name in ("instruction", "input", "output"):
        schema["properties"][name]["maxLength"] = 20
    return schema


def test_crafted_records_cover_both_verdicts() -> None:
    rows = crafted_records(400, seed=1)
    reference = jsonschema.Draft202012Validator(small_schema())
    verdicts = [reference.is_valid(r) for r in rows]
    assert 50 < sum(verdicts) < 350


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_prefilter_rejects_exactly_what_jsonschema_rejects(seed: int) -> None:
    got, expected = rejected_ids(crafted_records(400, seed), small_schema())
    assert got == expected


def test_prefilter_agrees_on_every_single_bad_value() -> None:
    """One row per (field, value): each value alone in an otherwise valid record."""
    rows = [record(**{name: value}) for name, (good, bad) in POOLS.items() for value in good + bad]
    got, expected = rejected_ids(rows, small_schema())
    assert got == expected


@pytest.mark.parametrize("char", ["\x1c", "\x1d", "\x1e", "\x1f", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\u205f"])
def test_prefilter_agrees_on_whitespace_in_ids(char: str) -> None:
    # The id pattern forbids whitespace (`[^\s:]`); jsonschema uses Python's `re`, where \s also
    # covers the separators U+001C..U+001F. The vectorized pre-filter must not let them through.
    rows = [record(id=f"general:a{char}b"), record(id="general:ab")]
    got, expected = rejected_ids(rows, SCHEMA)
    assert expected == {0}
    assert got == expected


# --- fallback for keywords the compiler does not know -------------------------------------------


def test_const_keyword_is_validated_through_the_fallback() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["copy_index"]["const"] = 0
    rows = [record(copy_index=0), record(copy_index=2), record(copy_index=0, output="")]
    valid, failures, _ = run(rows, schema)
    assert valid["copy_index"].to_list() == [0]
    assert [f[1] for f in failures] == ["invalid_copy_index", "invalid_output"]


def test_maximum_keyword_is_validated_through_the_fallback() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["source_row"]["maximum"] = 10
    valid, failures, _ = run([record(source_row=10), record(source_row=11)], schema)
    assert valid["source_row"].to_list() == [10]
    assert [f[1] for f in failures] == ["invalid_source_row"]


@pytest.mark.parametrize(
    "extra",
    [
        {"format": "uri"},
        {"const": "general"},
        {"not": {"const": "forbidden"}},
        {"maxLength": 10, "format": "hostname"},
    ],
)
def test_fallback_agrees_with_jsonschema_on_crafted_records(extra: dict) -> None:
    schema = small_schema()
    schema["properties"]["category"].update(extra)
    rows = crafted_records(300, seed=7) + [record(category=c) for c in ("general", "forbidden", "astronomy_and_more")]
    got, expected = rejected_ids(rows, schema)
    assert got == expected


def test_top_level_keyword_outside_the_compiled_set_is_still_enforced() -> None:
    # A record-level rule (here: a constraint under `allOf`) is not a per-property keyword; the
    # validator must still apply it (by falling back to jsonschema), never skip it.
    schema = copy.deepcopy(SCHEMA)
    schema["allOf"] = [{"properties": {"input": {"maxLength": 3}}}]
    rows = [record(input=""), record(input="long input")]
    got, expected = rejected_ids(rows, schema)
    assert expected == {1}
    assert got == expected


# --- the adapter's location ---------------------------------------------------------------------


def test_a_failure_carries_the_adapters_location_and_the_valid_frame_keeps_it() -> None:
    frame = frame_of([record(), record(id="general:1", source_row=1, output=""), record(id="general:2")])
    frame = frame.with_columns(pl.Series(LOCATION_COLUMN, ["line 1", "line 5", "line 9"]))
    valid, failures, _ = RecordValidator(SCHEMA)(frame, "general")
    assert valid.columns == [*RECORD_SCHEMA.names, LOCATION_COLUMN]  # for the global steps' quarantine rows
    assert valid[LOCATION_COLUMN].to_list() == ["line 1", "line 9"]
    assert valid["id"].to_list() == ["general:0", "general:2"]
    assert [(f[0]["id"], f[0][LOCATION_COLUMN], f[1]) for f in failures] == [("general:1", "line 5", "invalid_output")]
