"""ingest: one file read, assembled and normalized batch by batch, then validated and keyed; the
batch size changes nothing but memory."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import stellar_data as sd
from stellar_data.ingest import IngestTask, ingest
from tests.conftest import ROOT

LINES = [
    json.dumps(
        {"instruction": "請解釋什麼是黑洞", "input": "", "output": "黑洞是引力極強的天體。"}, ensure_ascii=False
    ),
    "{not json",
    json.dumps({"instruction": "What is a pulsar?", "output": "A rotating neutron star."}),
    json.dumps({"instruction": "missing output"}),
    json.dumps({"instruction": "", "input": "", "output": "empty instruction fails validation"}),
    json.dumps({"instruction": 42, "output": "wrong type"}),
    json.dumps({"instruction": "  spaced\u3000out  ", "input": "输入：x", "output": "输出：y"}, ensure_ascii=False),
]


@pytest.fixture()
def task_for(tmp_path: Path):
    (tmp_path / "data.jsonl").write_text("\n".join(LINES * 5) + "\n", encoding="utf-8")
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(
        f"""
[corpus]
name = "t"
seed = 3
sources_dir = "{tmp_path.as_posix()}"
[normalize]
protected_terms = "{(ROOT / "corpus" / "protected_terms.txt").as_posix()}"
[[sources]]
name = "s"
adapter = "alpaca"
path = "data.jsonl"
category = "general"
lang = "auto"
opencc = "t2s"
max_quarantine_ratio = 1.0
""",
        encoding="utf-8",
    )
    recipe = sd.load_recipe(recipe_path)
    (planned,) = sd.plan_build(recipe).files

    def make(read_batch: int) -> IngestTask:
        return IngestTask(planned.spec, planned.file, planned.index, recipe.seed, recipe.protected_terms, None,
                          read_batch=read_batch)  # fmt: skip

    return make


@pytest.mark.parametrize("read_batch", [1, 3, 7, 1000])
def test_batches_change_nothing(task_for, read_batch: int) -> None:
    whole, batched = ingest(task_for(1000)), ingest(task_for(read_batch))
    assert batched.records is not None and whole.records is not None
    assert batched.records.equals(whole.records)
    assert batched.quarantine.equals(whole.quarantine)
    assert [(s.step, s.total, s.kept, dict(s.dropped), dict(s.notes)) for s in batched.stats] == [
        (s.step, s.total, s.kept, dict(s.dropped), dict(s.notes)) for s in whole.stats
    ]


def test_every_line_is_a_record_or_a_quarantine_row(task_for) -> None:
    result = ingest(task_for(3))
    assert result.records is not None
    assert result.records.height + result.quarantine.height == len(LINES) * 5
    assert sorted(set(result.quarantine["rule"])) == [
        "invalid_instruction", "malformed_json", "missing_field", "wrong_type",
    ]  # fmt: skip
    assert result.records.filter(pl.col("source_row") == 0)["instruction"].item() == "请解释什么是黑洞"
    assert result.records.filter(pl.col("source_row") == 6).row(0, named=True)["input"] == "x"
