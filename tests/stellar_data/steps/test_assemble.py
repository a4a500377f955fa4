"""assemble: adapter entries -> typed record frame + quarantine rows + `read` counts."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from stellar_data.recipe import SourceSpec
from stellar_data.record import QUARANTINE_SCHEMA, RECORD_SCHEMA
from stellar_data.sources import ItemBatch, RawItem, Rejection, SourceFile
from stellar_data.steps.assemble import LOCATION_COLUMN, assemble

FILE = SourceFile(Path("/nowhere/sub/data.json"), "sub/data.json")


def spec(name: str = "general", lang: str = "en", category: str = "general") -> SourceSpec:
    return SourceSpec(name=name, adapter="alpaca", paths=("sub/data.json",), category=category, lang=lang, order=0)


def item(row: int, instruction: object = "q", input_: object = "", output: object = "a", **extra: object) -> RawItem:
    return RawItem(row=row, location=f"item {row}", instruction=instruction, input=input_, output=output, **extra)


def test_raw_items_become_records_with_row_ids() -> None:
    frame, quarantine, stats = assemble([item(0, "Q0", "I0", "O0"), item(1, "Q1", "", "O1")], spec(), FILE)
    assert frame.to_dicts() == [
        {
            "id": "general:0",
            "instruction": "Q0",
            "input": "I0",
            "output": "O0",
            "category": "general",
            "source": "general",
            "lang": "en",
            "group": "general:0",
            "source_file": "sub/data.json",
            "source_row": 0,
            "template_id": None,
            "original_id": None,
            "copy_index": 0,
            "_location": "item 0",
        },
        {
            "id": "general:1",
            "instruction": "Q1",
            "input": "",
            "output": "O1",
            "category": "general",
            "source": "general",
            "lang": "en",
            "group": "general:1",
            "source_file": "sub/data.json",
            "source_row": 1,
            "template_id": None,
            "original_id": None,
            "copy_index": 0,
            "_location": "item 1",
        },
    ]
    assert quarantine.height == 0
    assert (stats.step, stats.source, stats.total, stats.kept, dict(stats.dropped)) == ("read", "general", 2, 2, {})


def test_frame_and_quarantine_have_the_explicit_schemas() -> None:
    frame, quarantine, _ = assemble([item(0)], spec(), FILE)
    assert frame.columns == [*RECORD_SCHEMA.names, LOCATION_COLUMN]
    assert frame.drop(LOCATION_COLUMN).schema == pl.from_arrow(RECORD_SCHEMA.empty_table()).schema
    assert quarantine.schema == pl.from_arrow(QUARANTINE_SCHEMA.empty_table()).schema


def test_no_entries_gives_empty_typed_frames() -> None:
    frame, quarantine, stats = assemble([], spec(), FILE)
    assert frame.height == 0 and quarantine.height == 0
    assert frame.columns == [*RECORD_SCHEMA.names, LOCATION_COLUMN]
    assert quarantine.columns == list(QUARANTINE_SCHEMA.names)
    assert (stats.total, stats.kept) == (0, 0) and stats.reconciles


def test_key_replaces_row_in_id_and_group_and_original_id_kept() -> None:
    entry = item(5, key="4opt:442", group="astro_qa:4opt:442", original_id="442")
    frame, _, _ = assemble([entry], spec("astro_qa_zh", "zh", "astronomy"), FILE)
    row = frame.row(0, named=True)
    assert row["id"] == "astro_qa_zh:4opt:442"
    assert row["group"] == "astro_qa:4opt:442"
    assert row["original_id"] == "442"
    assert row["source_row"] == 5
    assert row["category"] == "astronomy"


def test_group_defaults_to_id() -> None:
    frame, _, _ = assemble([item(3, key="k3"), item(4)], spec(), FILE)
    assert frame["group"].to_list() == ["general:k3", "general:4"]
    assert frame["group"].to_list() == frame["id"].to_list()


def test_missing_input_becomes_empty_string() -> None:
    frame, quarantine, _ = assemble([item(0, "q", None, "a")], spec(), FILE)
    assert frame["input"].to_list() == [""]
    assert quarantine.height == 0


def test_lang_comes_from_spec() -> None:
    # spec says en even though the text is Chinese: the recipe is trusted
    frame, _, _ = assemble([item(0, "请解释黑洞", "", "黑洞是……")], spec(lang="en"), FILE)
    assert frame["lang"].to_list() == ["en"]


def test_lang_auto_is_detected_per_record() -> None:
    entries = [
        item(0, "Explain black holes", "", "A black hole is ..."),
        item(1, "Translate", "黑洞", "black hole"),
        item(2, "请解释黑洞", "", "黑洞是……"),
    ]
    frame, _, _ = assemble(entries, spec(lang="auto"), FILE)
    assert frame["lang"].to_list() == ["en", "zh", "zh"]


def test_lang_set_by_adapter_wins_over_spec() -> None:
    frame, _, _ = assemble([item(0, "你是谁", "", "我是星语者", lang="zh"), item(1)], spec(lang="en"), FILE)
    assert frame["lang"].to_list() == ["zh", "en"]


@pytest.mark.parametrize(
    ("fields", "message_part"),
    [
        ({"instruction": 42}, "instruction must be a string, got int"),
        ({"instruction": None}, "instruction must be a string, got NoneType"),
        ({"input_": ["x"]}, "input must be a string, got list"),
        ({"input_": 0}, "input must be a string, got int"),
        ({"output": None}, "output must be a string, got NoneType"),
        ({"output": 3.5}, "output must be a string, got float"),
        ({"output": True}, "output must be a string, got bool"),
    ],
)
def test_non_string_field_goes_to_quarantine_as_wrong_type(fields: dict, message_part: str) -> None:
    frame, quarantine, stats = assemble([item(0), item(1, **fields), item(2)], spec(), FILE)
    assert frame["id"].to_list() == ["general:0", "general:2"]
    assert quarantine.height == 1
    row = quarantine.row(0, named=True)
    assert row["rule"] == "wrong_type"
    assert row["id"] == "general:1"
    assert row["source"] == "general"
    assert row["file"] == "sub/data.json"
    assert row["location"] == "item 1"
    assert row["row"] == 1
    assert row["deliberate"] is False
    assert message_part in row["message"]
    assert row["raw"] is not None
    assert (stats.total, stats.kept, dict(stats.dropped)) == (3, 2, {"wrong_type": 1})
    assert stats.reconciles


def test_wrong_type_id_uses_key_when_present() -> None:
    _, quarantine, _ = assemble([item(7, output=12, key="4opt:9")], spec("astro_qa_zh", "zh"), FILE)
    assert quarantine["id"].to_list() == ["astro_qa_zh:4opt:9"]


def test_rejections_pass_into_quarantine_with_location_rule_and_flag() -> None:
    entries = [
        item(0),
        Rejection(1, "row 3 (ID 41)", "empty_option", "option(s) D empty", raw='{"D": null}'),
        Rejection(2, "row 4 (ID 7)", "no_answer_key", "matching questions have no answer key", deliberate=True),
        Rejection(None, "line 9", "bad_json", "line is not JSON"),
        item(4),
    ]
    frame, quarantine, stats = assemble(entries, spec(), FILE)
    assert frame["id"].to_list() == ["general:0", "general:4"]
    assert quarantine.select(
        "source", "file", "location", "row", "rule", "message", "deliberate", "id", "raw"
    ).rows() == [
        (
            "general",
            "sub/data.json",
            "row 3 (ID 41)",
            1,
            "empty_option",
            "option(s) D empty",
            False,
            None,
            '{"D": null}',
        ),
        (
            "general",
            "sub/data.json",
            "row 4 (ID 7)",
            2,
            "no_answer_key",
            "matching questions have no answer key",
            True,
            None,
            None,
        ),
        ("general", "sub/data.json", "line 9", None, "bad_json", "line is not JSON", False, None, None),
    ]
    assert stats.total == 5
    assert stats.kept == 2
    assert dict(stats.dropped) == {"empty_option": 1, "no_answer_key": 1, "bad_json": 1}


def test_stats_reconcile_on_a_mixed_batch() -> None:
    entries = []
    for row in range(60):
        if row % 5 == 0:
            entries.append(Rejection(row, f"item {row}", "empty_option", "empty"))
        elif row % 7 == 0:
            entries.append(item(row, output=row))
        else:
            entries.append(item(row))
    frame, quarantine, stats = assemble(entries, spec(), FILE)
    assert stats.total == 60
    assert stats.total == stats.kept + sum(stats.dropped.values())
    assert stats.reconciles
    assert stats.kept == frame.height
    assert sum(stats.dropped.values()) == quarantine.height
    assert dict(stats.dropped) == {"empty_option": 12, "wrong_type": 7}
    assert quarantine.group_by("rule").len().sort("rule").rows() == [("empty_option", 12), ("wrong_type", 7)]


# --- locations and unencodable text -----------------------------------------------------------


def batch(kind: str, rows: list[int], instructions: list[object] | None = None) -> ItemBatch:
    texts = instructions if instructions is not None else [f"q{r}" for r in rows]
    return ItemBatch(kind, rows, texts, [""] * len(rows), ["a"] * len(rows))


def test_each_record_carries_its_adapters_location_in_file_order() -> None:
    entries = [
        batch("line", [0, 1]),
        RawItem(row=2, location="row 4 (ID 41)", instruction="q", input="", output="a"),
        batch("item", [3, 5], ["q3", 7]),  # item 5 is refused (wrong type)
        item(6),
    ]
    frame, quarantine, _ = assemble(entries, spec(), FILE)
    assert frame.select("source_row", LOCATION_COLUMN).rows() == [
        (0, "line 1"), (1, "line 2"), (2, "row 4 (ID 41)"), (3, "item 3"), (6, "item 6"),
    ]  # fmt: skip
    assert quarantine.select("location", "rule").rows() == [("item 5", "wrong_type")]


def test_a_lone_surrogate_in_a_text_quarantines_only_its_item() -> None:
    entries = [
        item(0),
        item(1, "bad \ud800 text"),
        batch("line", [2, 3], ["fine", "x\udfff"]),
        item(4, output="ok", key="k4", original_id="\udc80"),
    ]
    frame, quarantine, stats = assemble(entries, spec(), FILE)
    assert frame["source_row"].to_list() == [0, 2]
    assert frame[LOCATION_COLUMN].to_list() == ["item 0", "line 3"]
    rows = quarantine.select("location", "rule", "id", "message").rows()
    assert rows == [
        ("item 1", "invalid_unicode", "general:1", "\\ud800 is a lone surrogate, not a character"),
        ("line 4", "invalid_unicode", "general:3", "\\udfff is a lone surrogate, not a character"),
        ("item 4", "invalid_unicode", "general:k4", "\\udc80 is a lone surrogate, not a character"),
    ]
    assert "\ufffd" in quarantine["raw"][0]
    assert (stats.total, stats.kept, dict(stats.dropped)) == (5, 2, {"invalid_unicode": 3})
    assert stats.reconciles


def test_a_rejection_whose_raw_text_holds_a_lone_surrogate_is_still_written() -> None:
    entries = [Rejection(0, "line 1", "malformed_json", "bad \ud800", raw='{"a": "\udc00"}'), item(1)]
    _, quarantine, _ = assemble(entries, spec(), FILE)
    assert quarantine.select("message", "raw").row(0) == ("bad \ufffd", '{"a": "\ufffd"}')
