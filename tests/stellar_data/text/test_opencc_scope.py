"""changeable_characters: what OpenCC may change, so that normalize converts only the texts holding
one of those characters and every other text is provably left as OpenCC would leave it. The key
characters: OpenCC converts a text run by run, so normalize converts only the runs that may change."""

from __future__ import annotations

import json
from pathlib import Path

import opencc
import polars as pl
import pytest

from stellar_data.steps.normalize import ChineseConverter, NormalizeConfig, conversion_scope, convert_chinese
from stellar_data.text.opencc_scope import changeable_characters, dictionary_characters

CONFIGS = ["t2s", "tw2s", "hk2s"]


@pytest.mark.parametrize("config_name", CONFIGS)
def test_every_character_outside_the_set_converts_to_itself(config_name: str) -> None:
    changeable = changeable_characters(config_name)
    assert changeable is not None and len(changeable) > 4000
    outside = [chr(c) for c in range(0x2E80, 0x110000) if not 0xD800 <= c <= 0xDFFF and chr(c) not in changeable]
    converted = opencc.OpenCC(f"{config_name}.json").convert("\n".join(outside)).split("\n")
    assert converted == outside


@pytest.mark.parametrize("config_name", CONFIGS)
def test_every_single_character_opencc_changes_is_in_the_set(config_name: str) -> None:
    chars = [chr(c) for c in range(0x2E80, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    converted = opencc.OpenCC(f"{config_name}.json").convert("\n".join(chars)).split("\n")
    changed = {c for c, out in zip(chars, converted, strict=True) if c != out}
    assert changed <= changeable_characters(config_name)


def test_characters_changed_only_inside_a_phrase_are_in_the_set() -> None:
    # 沈 alone stays (a surname), 深沈 becomes 深沉: only the phrase dictionary knows it
    t2s = opencc.OpenCC("t2s.json")
    assert t2s.convert("沈") == "沈"
    assert t2s.convert("深沈") == "深沉"
    assert "沈" in changeable_characters("t2s")
    assert "的" not in changeable_characters("t2s")  # common simplified text stays out of scope


def real_texts(shared_sources: Path) -> list[str]:
    data = shared_sources / "LLaMA-Factory" / "data"
    items = json.loads((data / "alpaca_zh_demo.json").read_text(encoding="utf-8"))
    items += json.loads((data / "identity.json").read_text(encoding="utf-8"))
    return [item[field] for item in items for field in ("instruction", "input", "output") if item.get(field)]


@pytest.mark.parametrize("config_name", CONFIGS)
def test_real_texts_outside_the_scope_convert_to_themselves(shared_sources: Path, config_name: str) -> None:
    simplified = real_texts(shared_sources)
    traditional = opencc.OpenCC("s2t.json").convert("\n".join(simplified)).split("\n")
    texts = pl.Series(simplified + traditional)
    outside = texts.filter(~texts.str.contains(conversion_scope(config_name))).to_list()
    assert len(outside) > 100  # the scope leaves real simplified text out
    assert ChineseConverter(config_name, ()).convert(outside) == outside


def test_normalize_converts_real_texts_as_converting_all_would(shared_sources: Path) -> None:
    simplified = real_texts(shared_sources)
    traditional = opencc.OpenCC("s2t.json").convert("\n".join(simplified)).split("\n")
    column = pl.Series("output", simplified + traditional + ["蒭藁星是變星"])
    config = NormalizeConfig("t2s", ("蒭藁",))
    [converted] = convert_chinese([column], config)
    assert converted.to_list() == ChineseConverter("t2s", ("蒭藁",)).convert(column.to_list())


@pytest.mark.parametrize("config_name", CONFIGS)
def test_every_changeable_character_is_a_key_character(config_name: str) -> None:
    characters = dictionary_characters(config_name)
    assert characters is not None
    assert characters.changeable < characters.keyed
    assert "，" not in characters.keyed and "\n" not in characters.keyed


def runs_and_others(text: str, keyed: frozenset[str]) -> list[str]:
    """The text cut into maximal runs of key characters and single other characters."""
    pieces: list[str] = []
    for char in text:
        if char in keyed and pieces and pieces[-1][-1] in keyed:
            pieces[-1] += char
        else:
            pieces.append(char)
    return pieces


@pytest.mark.parametrize("config_name", CONFIGS)
def test_opencc_converts_a_text_run_by_run(shared_sources: Path, config_name: str) -> None:
    simplified = real_texts(shared_sources)
    traditional = opencc.OpenCC("s2t.json").convert("\n".join(simplified)).split("\n")
    texts = simplified + traditional + ["乾隆年間，天乾物燥。", "頭髮發白", "深沈的沈先生"]
    keyed = dictionary_characters(config_name).keyed
    converter = ChineseConverter(config_name, ())
    pieces = [runs_and_others(text, keyed) for text in texts]
    converted = iter(converter.convert([piece for text_pieces in pieces for piece in text_pieces]))
    by_runs = ["".join(next(converted) for _ in text_pieces) for text_pieces in pieces]
    assert by_runs == converter.convert(texts)
    assert sum(len(p) for p in pieces) > 10 * len(texts)  # real texts hold many runs


# --- reading the dictionaries -------------------------------------------------------------------


def opencc_home_with(tmp_path: Path, entries: str) -> Path:
    share = tmp_path / "share" / "opencc"
    share.mkdir(parents=True)
    chain = {"conversion_chain": [{"dict": {"type": "group", "dicts": [{"type": "text", "file": "mine.txt"}]}}]}
    (share / "mine.json").write_text(json.dumps(chain), encoding="utf-8")
    (share / "mine.txt").write_text(entries, encoding="utf-8")
    return tmp_path


def test_set_holds_differing_positions_of_every_candidate_and_whole_keys_of_other_length(tmp_path: Path) -> None:
    home = opencc_home_with(tmp_path, "深沈\t深沉\n乾\t干 乾\n乾隆\t乾隆\n甲乙\t丙\n")
    assert changeable_characters("mine", home) == frozenset("沈乾甲乙")
    assert dictionary_characters("mine", home).keyed == frozenset("深沈乾隆甲乙")


def test_unreadable_dictionaries_give_none(tmp_path: Path) -> None:
    assert changeable_characters("t2s", tmp_path) is None  # no config there
    assert changeable_characters("mine", opencc_home_with(tmp_path, "no tab on this line\n")) is None
    assert dictionary_characters("t2s", tmp_path) is None
