"""Identity adapter: `{{name}}` / `{{author}}` filled per language, spaces beside CJK dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stellar_data.config import from_table
from stellar_data.sources.base import RawItem, Rejection
from stellar_data.sources.identity import IdentityOptions, fill_placeholders, read_identity
from tests.helpers import source_file, write_json

ZH = IdentityOptions().values_for("zh")
EN = IdentityOptions().values_for("en")
CJK = "[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]"


def read(path: Path, root: Path, options: dict | None = None, lang: str = "auto") -> list[RawItem | Rejection]:
    return list(read_identity(source_file(path, root), from_table(IdentityOptions, options or {}), lang))


# --- fill_placeholders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("我是 {{name}}，由 {{author}} 开发的 AI 助手。", ZH, "我是星语者，由星语调校局开发的 AI 助手。"),
        ("{{author}} 创造了我。", ZH, "星语调校局创造了我。"),
        ("你好，我是 {{name}}", ZH, "你好，我是星语者"),
        (
            "I am {{name}}, an AI assistant developed by {{author}}.",
            EN,
            "I am StellarSpeak, an AI assistant developed by 星语调校局.",
        ),
        ("Call me {{name}}.", EN, "Call me StellarSpeak."),
        ("no placeholder here", EN, "no placeholder here"),
    ],
)
def test_fill_placeholders(text: str, values: dict[str, str], expected: str) -> None:
    assert fill_placeholders(text, values) == expected


def test_default_names() -> None:
    assert ZH == {"{{name}}": "星语者", "{{author}}": "星语调校局"}
    assert EN == {"{{name}}": "StellarSpeak", "{{author}}": "星语调校局"}


# --- real data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity(shared_sources: Path) -> tuple[list[dict], list[RawItem | Rejection]]:
    path = shared_sources / "LLaMA-Factory/data/identity.json"
    return json.loads(path.read_text(encoding="utf-8")), read(path, shared_sources)


def test_identity_yields_91_items_16_en_75_zh(identity: tuple[list[dict], list]) -> None:
    _, items = identity

    assert len(items) == 91
    assert all(isinstance(i, RawItem) for i in items)
    assert sum(i.lang == "en" for i in items) == 16
    assert sum(i.lang == "zh" for i in items) == 75


def test_no_placeholder_left_and_names_match_the_language(identity: tuple[list[dict], list]) -> None:
    _, items = identity

    for item in items:
        text = item.instruction + item.input + item.output
        assert "{{" not in text and "}}" not in text
        if item.lang == "en":
            assert "星语者" not in text
        else:
            assert "StellarSpeak" not in text
    assert sum("StellarSpeak" in i.output for i in items if i.lang == "en") >= 10


def test_chinese_records_lose_the_spaces_around_placeholders(identity: tuple[list[dict], list]) -> None:
    raw, items = identity

    for record, item in zip(raw, items, strict=True):
        if "我是 {{name}}，" in record["output"]:
            assert "我是星语者，" in item.output
    assert sum("我是星语者，" in i.output for i in items) == sum("我是 {{name}}，" in r["output"] for r in raw) > 0
    spaced = re.compile(f"{CJK} (星语者|星语调校局)|(星语者|星语调校局) {CJK}")
    assert not [i.output for i in items if spaced.search(i.output)]


def test_english_records_keep_the_space_before_the_author(identity: tuple[list[dict], list]) -> None:
    raw, items = identity

    expected = sum("developed by {{author}}." in r["output"] for r in raw)
    assert expected > 0
    assert sum("developed by 星语调校局." in i.output for i in items) == expected


def test_fixed_language_is_applied_to_every_record(shared_sources: Path) -> None:
    items = read(shared_sources / "LLaMA-Factory/data/identity.json", shared_sources, lang="zh")

    assert {i.lang for i in items} == {"zh"}
    assert not [i for i in items if "StellarSpeak" in i.output]


# --- options and crafted input -----------------------------------------------------------------


def test_custom_name_for_one_language_keeps_the_default_author(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "identity.json",
        [
            {"instruction": "你是谁？", "input": "", "output": "我是 {{name}}，由 {{author}} 开发。"},
            {"instruction": "Who are you?", "input": "", "output": "I am {{name}}, built by {{author}}."},
        ],
    )

    zh, en = read(path, tmp_path, {"names": {"zh": {"name": "小星"}}})

    assert (zh.lang, zh.output) == ("zh", "我是小星，由星语调校局开发。")
    assert (en.lang, en.output) == ("en", "I am StellarSpeak, built by 星语调校局.")


def test_custom_placeholder_syntax(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "identity.json",
        [{"instruction": "介绍一下 <NAME>", "input": "", "output": "我是 <NAME>，由 [AUTHOR] 打造。"}],
    )

    (item,) = read(
        path,
        tmp_path,
        {"placeholders": {"name": "<NAME>", "author": "[AUTHOR]"}, "names": {"zh": {"author": "某实验室"}}},
    )

    assert item.instruction == "介绍一下星语者"
    assert item.output == "我是星语者，由某实验室打造。"


def test_non_string_field_is_rejected_as_wrong_type(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "identity.json",
        [
            {"instruction": "hi", "input": "", "output": ["I am {{name}}"]},
            {"instruction": "hi", "output": "I am {{name}}."},
        ],
    )

    bad, good = read(path, tmp_path)

    assert isinstance(bad, Rejection) and (bad.rule, bad.location) == ("wrong_type", "item 0")
    assert isinstance(good, RawItem) and (good.input, good.output, good.lang) == ("", "I am StellarSpeak.", "en")
