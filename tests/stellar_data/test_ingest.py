"""ingest: one file read, assembled and normalized batch by batch, then validated and keyed; the
batch size changes nothing but memory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

import stellar_data as sd
from stellar_data.errors import SourceFileError
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


# --- #29: a file changed while it is read ------------------------------------------------------


def changing(task: IngestTask, change: Callable[[], None]) -> IngestTask:
    """The task, with `change` run once its files are stat'ed and before they are read."""
    return dataclasses.replace(task, on_started=change)


def test_the_recorded_hash_is_of_the_bytes_read(task_for) -> None:
    task = task_for(1000)
    result = ingest(task)
    data = task.file.path.read_bytes()
    assert result.files == {"data.jsonl": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}}


def test_a_file_appended_to_while_it_is_read_is_a_file_error(task_for) -> None:
    task = task_for(1000)

    def append() -> None:
        with task.file.path.open("a", encoding="utf-8") as handle:
            handle.write(LINES[0] + "\n")

    with pytest.raises(SourceFileError) as caught:
        ingest(changing(task, append))

    message = str(caught.value)
    assert message.startswith("data.jsonl: changed while it was read (size/mtime") and "inode" not in message
    assert message.endswith(" differ); rebuild when it is stable")


def test_a_same_size_rewrite_with_its_mtime_restored_is_still_caught(task_for) -> None:
    """ctime changes on every write: a rewrite keeping size and mtime is caught all the same."""
    task = task_for(1000)
    path = task.file.path

    def rewrite() -> None:
        status = path.stat()
        data = path.read_bytes()
        path.write_bytes(data.replace(b"pulsar", b"quasar"))
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))

    with pytest.raises(SourceFileError, match=r"^data\.jsonl: changed while it was read \(ctime differ\); rebuild"):
        ingest(changing(task, rewrite))


def test_a_file_replaced_by_rename_is_caught(task_for) -> None:
    task = task_for(1000)
    path = task.file.path

    def replace_file() -> None:
        status = path.stat()
        fresh = path.with_name("fresh.jsonl")
        fresh.write_bytes(path.read_bytes())
        os.utime(fresh, ns=(status.st_atime_ns, status.st_mtime_ns))
        fresh.replace(path)

    with pytest.raises(SourceFileError, match=r"^data\.jsonl: changed while it was read \([a-z/]*inode"):
        ingest(changing(task, replace_file))


def test_a_file_removed_while_it_is_read_is_caught(task_for) -> None:
    task = task_for(1000)
    with pytest.raises(SourceFileError, match=r"^data\.jsonl: "):
        ingest(changing(task, task.file.path.unlink))


def test_a_file_added_to_a_folder_source_while_it_is_read_is_caught(tmp_path: Path) -> None:
    sources = tmp_path / "samples"
    shutil.copytree(ROOT / "corpus" / "samples", sources)
    recipe = sd.load_recipe(ROOT / "corpus" / "default.toml", sources_dir=sources)
    planned = next(p for p in sd.plan_build(recipe).files if p.spec.name == "astro_qa")
    task = IngestTask(planned.spec, planned.file, planned.index, recipe.seed, recipe.protected_terms)
    folder = planned.file.path

    assert set(ingest(task).files) >= {"Astro-QA/data/ZH/judgment_ZH.xlsx", "Astro-QA/data/EN/judgment_EN.xlsx"}
    with pytest.raises(SourceFileError, match=r"^Astro-QA/data/notes\.txt: added while it was read; rebuild"):
        ingest(changing(task, (folder / "notes.txt").touch))


def test_a_file_touched_while_it_is_read_is_caught(task_for) -> None:
    task = task_for(1000)
    with pytest.raises(SourceFileError, match=r"^data\.jsonl: changed while it was read \(mtime/ctime differ\)"):
        ingest(changing(task, lambda: os.utime(task.file.path, ns=(1, 1))))
