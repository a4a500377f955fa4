"""astro_qa_heldout/: held-out items as plain benchmark rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from stellar_data.ingest import IngestTask, ingest
from stellar_data.recipe import load_recipe
from stellar_data.sources import SourceFile
from stellar_data.steps.holdout import holdout
from stellar_data.writers.heldout import HELDOUT_DIR, HELDOUT_SCHEMA, heldout_table, write_heldout
from tests.conftest import ROOT

FIELDS = ("type", "type_label", "subfield", "question", "prompt", "answer", "explanation")


def held(rows: list[dict]) -> pl.DataFrame:
    """Held-out records: record columns plus the `_x_*` structured fields."""
    records = []
    for row in rows:
        options = row.get("options", {})
        records.append(
            {
                "id": row["id"],
                "instruction": "i",
                "input": "",
                "output": "o",
                "category": "astronomy",
                "source": "astro_qa",
                "lang": row["lang"],
                "group": row["group"],
                "source_file": row.get("source_file", "Astro-QA/data/ZH/x.xlsx"),
                "source_row": 0,
                "template_id": None,
                "original_id": row.get("original_id"),
                "copy_index": 0,
                **{f"_x_{name}": row.get(name, "") for name in FIELDS},
                **{f"_x_option_{c}": options.get(c, "") for c in "ABCDE"},
            }
        )
    return pl.DataFrame(records, schema_overrides={"template_id": pl.String, "original_id": pl.String})


ROWS = [
    {"id": "astro_qa:zh:4opt:9", "lang": "zh", "group": "astro_qa:4opt:9", "type": "single_choice_4",
     "subfield": "天体物理学", "question": "问？", "answer": "C", "original_id": "9",
     "options": {"A": "甲", "B": "乙", "C": "丙", "D": "丁"}, "explanation": "因为。"},
    {"id": "astro_qa:en:4opt:9", "lang": "en", "group": "astro_qa:4opt:9", "type": "single_choice_4",
     "subfield": "天体物理学", "question": "Q?", "answer": "C", "original_id": "9",
     "options": {"A": "a", "B": "b", "C": "c", "D": "d"}},
    {"id": "astro_qa:zh:judgment:3", "lang": "zh", "group": "astro_qa:judgment:3", "type": "judgment",
     "question": "太阳是恒星", "answer": "true", "original_id": "3"},
    {"id": "astro_qa:zh:subjective:442", "lang": "zh", "group": "astro_qa:subjective:442", "type": "subjective",
     "type_label": "简答题", "subfield": "天文技术与方法", "question": "偏振光有什么应用场景？",
     "prompt": "以下是天文学科目的问题 问题为：偏振光有什么应用场景？", "answer": "偏光式3D技术……"},
    {"id": "astro_qa:zh:5opt:2", "lang": "zh", "group": "astro_qa:5opt:2", "type": "single_choice_5",
     "answer": "BE", "question": "q", "options": {"A": "1", "B": "2", "C": "3", "D": "4", "E": "5"}},
    {"id": "astro_qa:en:multi:4", "lang": "en", "group": "astro_qa:multi:4", "type": "multi_select",
     "answer": "AC", "question": "q", "options": {"A": "x", "B": "y", "C": "z"}},
]  # fmt: skip


def test_schema_is_the_heldout_schema() -> None:
    table = heldout_table(held(ROWS))

    assert table.schema.equals(HELDOUT_SCHEMA)
    assert table.num_rows == len(ROWS)


def test_rows_sorted_by_group_lang_id() -> None:
    frame = held(ROWS).sample(fraction=1.0, shuffle=True, seed=3)

    rows = heldout_table(frame).to_pylist()

    keys = [(r["group"], r["lang"], r["id"]) for r in rows]
    assert keys == sorted(keys)
    assert [r["id"] for r in rows][:2] == ["astro_qa:en:4opt:9", "astro_qa:zh:4opt:9"]


def test_options_list_only_the_non_empty_ones() -> None:
    rows = {r["id"]: r for r in heldout_table(held(ROWS)).to_pylist()}

    assert rows["astro_qa:zh:4opt:9"]["options"] == [
        {"label": "A", "text": "甲"},
        {"label": "B", "text": "乙"},
        {"label": "C", "text": "丙"},
        {"label": "D", "text": "丁"},
    ]
    assert [o["label"] for o in rows["astro_qa:zh:5opt:2"]["options"]] == list("ABCDE")
    assert rows["astro_qa:en:multi:4"]["options"] == [
        {"label": "A", "text": "x"},
        {"label": "B", "text": "y"},
        {"label": "C", "text": "z"},
    ]
    assert rows["astro_qa:zh:judgment:3"]["options"] == []
    assert rows["astro_qa:zh:subjective:442"]["options"] == []


def test_fields_come_from_the_structured_columns() -> None:
    rows = {r["id"]: r for r in heldout_table(held(ROWS)).to_pylist()}

    sample = rows["astro_qa:zh:subjective:442"]
    assert {k: sample[k] for k in ("type", "type_label", "subfield", "question", "answer", "lang", "source")} == {
        "type": "subjective",
        "type_label": "简答题",
        "subfield": "天文技术与方法",
        "question": "偏振光有什么应用场景？",
        "answer": "偏光式3D技术……",
        "lang": "zh",
        "source": "astro_qa",
    }
    assert sample["original_id"] is None
    assert rows["astro_qa:zh:4opt:9"]["explanation"] == "因为。"
    assert rows["astro_qa:zh:4opt:9"]["original_id"] == "9"
    assert rows["astro_qa:zh:judgment:3"]["answer"] == "true"
    assert rows["astro_qa:en:multi:4"]["answer"] == "AC"
    assert set(rows["astro_qa:zh:4opt:9"]) == set(HELDOUT_SCHEMA.names)


def test_write_heldout(tmp_path: Path) -> None:
    assert write_heldout(held(ROWS).head(0), tmp_path / HELDOUT_DIR).paths == []
    assert not (tmp_path / HELDOUT_DIR).exists()

    written = write_heldout(held(ROWS), tmp_path / HELDOUT_DIR)

    assert written.paths == [tmp_path / HELDOUT_DIR / "test-00000-of-00001.parquet"]
    path = written.paths[0]
    assert written.num_bytes == heldout_table(held(ROWS)).nbytes
    table = pq.read_table(path)
    assert table.schema.equals(HELDOUT_SCHEMA)
    assert table.to_pylist() == heldout_table(held(ROWS)).to_pylist()


def test_items_without_options_only() -> None:
    rows = [r for r in ROWS if r["type"] in {"judgment", "subjective"}]

    table = heldout_table(held(rows))

    assert table.schema.equals(HELDOUT_SCHEMA)
    assert [r["options"] for r in table.to_pylist()] == [[], []]


def test_real_heldout_items(shared_sources: Path) -> None:
    recipe = load_recipe(ROOT / "corpus" / "stellarspeak.toml", sources_dir=shared_sources)
    spec = recipe.source("astro_qa")
    (path,) = spec.paths
    result = ingest(IngestTask(spec, SourceFile(shared_sources / path, path), 0, recipe.seed, recipe.protected_terms))
    assert result.records is not None and spec.holdout is not None
    _, held_records, _ = holdout(result.records, {"astro_qa": spec.holdout}, recipe.seed)

    table = heldout_table(held_records)
    rows = table.to_pylist()

    assert table.schema.equals(HELDOUT_SCHEMA)
    assert len(rows) == held_records.height > 400
    assert {r["type"] for r in rows} == {"single_choice_4", "single_choice_5", "multi_select", "judgment", "subjective"}
    letters = {"single_choice_4": 4, "single_choice_5": 5, "multi_select": 4, "judgment": 0, "subjective": 0}
    for row in rows:
        assert len(row["options"]) == letters[row["type"]], row["id"]
        assert all(o["text"] for o in row["options"])
        if row["type"] == "judgment":
            assert row["answer"] in {"true", "false"}
        elif row["type"] != "subjective":
            assert set(row["answer"]) <= {o["label"] for o in row["options"]}
        assert row["lang"] in {"zh", "en"} and row["source"] == "astro_qa"
        assert row["source_file"].startswith("Astro-QA/data/")
    keys = [(r["group"], r["lang"], r["id"]) for r in rows]
    assert keys == sorted(keys)
