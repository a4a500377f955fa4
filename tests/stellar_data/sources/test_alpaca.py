"""Alpaca adapter: {instruction, input, output} records; `输入：` / `输出：` label artefacts stripped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stellar_data.config import from_table
from stellar_data.sources.alpaca import AlpacaOptions, read_alpaca
from stellar_data.sources.base import RawItem, Rejection, each_item
from tests.helpers import source_file, write_json, write_jsonl

INPUT_LABEL = re.compile(r"^输入[：:]")
OUTPUT_LABEL = re.compile(r"^输出[：:]")


def read(path: Path, root: Path, options: dict | None = None, lang: str = "zh") -> list[RawItem | Rejection]:
    return list(each_item(read_alpaca(source_file(path, root), from_table(AlpacaOptions, options or {}), lang)))


# --- real data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zh_demo(shared_sources: Path) -> tuple[Path, Path]:
    return shared_sources / "LLaMA-Factory/data/alpaca_zh_demo.json", shared_sources


def test_zh_demo_yields_1000_items_with_no_label_prefix_left(zh_demo: tuple[Path, Path]) -> None:
    items = read(*zh_demo)

    assert len(items) == 1000
    assert all(isinstance(i, RawItem) for i in items)
    assert [i.row for i in items] == list(range(1000))
    assert not [i for i in items if INPUT_LABEL.match(i.input)]
    assert not [i for i in items if OUTPUT_LABEL.match(i.output)]


def test_zh_demo_strips_only_the_label_and_leaves_other_records_untouched(zh_demo: tuple[Path, Path]) -> None:
    path, root = zh_demo
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = read(path, root)

    stripped_inputs = stripped_outputs = 0
    for record, item in zip(raw, items, strict=True):
        assert item.instruction == record["instruction"]
        if record["input"].startswith("输入："):
            stripped_inputs += 1
            assert item.input == record["input"].removeprefix("输入：").lstrip()
        else:
            assert item.input == record["input"]
        label = next((p for p in ("输出：", "输出:") if record["output"].startswith(p)), None)
        if label:
            stripped_outputs += 1
            assert item.output == record["output"].removeprefix(label).lstrip()
        else:
            assert item.output == record["output"]
    assert (stripped_inputs, stripped_outputs) == (94, 18)


def test_zh_demo_keeps_labels_when_stripping_is_off(zh_demo: tuple[Path, Path]) -> None:
    items = read(*zh_demo, options={"strip_io_prefixes": False})

    assert len(items) == 1000
    assert sum(i.input.startswith("输入：") for i in items) == 94
    assert sum(i.output.startswith("输出：") for i in items) == 15
    assert sum(i.output.startswith("输出:") for i in items) == 3


def test_en_demo_yields_999_items_412_with_input_verbatim(shared_sources: Path) -> None:
    path = shared_sources / "LLaMA-Factory/data/alpaca_en_demo.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = read(path, shared_sources, lang="en")

    assert len(items) == 999
    assert sum(1 for i in items if i.input) == 412
    assert [(i.instruction, i.input, i.output) for i in items] == [
        (r["instruction"], r["input"], r["output"]) for r in raw
    ]


# --- crafted input -----------------------------------------------------------------------------


def test_label_is_stripped_only_at_the_start_with_either_colon(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "data.json",
        [
            {"instruction": "翻译", "input": "输入： 天狼星", "output": "输出:  Sirius"},
            {"instruction": "解释", "input": "请看输入：这里", "output": "模型的输出：很好"},
        ],
    )

    first, second = read(path, tmp_path)

    assert (first.input, first.output) == ("天狼星", "Sirius")
    assert (second.input, second.output) == ("请看输入：这里", "模型的输出：很好")


def test_missing_input_defaults_to_empty_and_jsonl_is_accepted(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [{"instruction": "Name a planet.", "output": "Mars"}])

    (item,) = read(path, tmp_path, lang="en")

    assert item == RawItem(row=0, location="line 1", instruction="Name a planet.", input="", output="Mars")


def test_record_without_output_is_rejected_as_missing_field(tmp_path: Path) -> None:
    path = write_json(tmp_path / "data.json", [{"instruction": "a", "output": "b"}, {"instruction": "c", "input": ""}])

    good, bad = read(path, tmp_path)

    assert isinstance(good, RawItem)
    assert isinstance(bad, Rejection)
    assert (bad.rule, bad.row, bad.location) == ("missing_field", 1, "item 1")
    assert "output" in bad.message


def test_non_object_record_is_rejected(tmp_path: Path) -> None:
    path = write_json(tmp_path / "data.json", [["instruction", "output"], {"instruction": "a", "output": "b"}])

    bad, good = read(path, tmp_path)

    assert isinstance(bad, Rejection) and bad.rule == "not_an_object"
    assert isinstance(good, RawItem) and good.row == 1
