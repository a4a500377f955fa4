"""JSON / JSON Lines items: each record-level rule quarantines one item, with its location, and the
items around it are read; file-level problems are one SourceFileError naming the file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from stellar_data.errors import SourceFileError
from stellar_data.sources.base import Rejection
from stellar_data.sources.json_items import iter_json_items
from stellar_data.sources.json_parse import array_items, object_keys
from tests.helpers import source_file

GOOD = '{"instruction": "q", "output": "a"}'
DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000


def put(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def entries(path: Path, root: Path) -> tuple[list[tuple[int, str, object]], list[Rejection]]:
    read = list(iter_json_items(source_file(path, root)))
    assert read, "nothing read"
    return [e for e in read if not isinstance(e, Rejection)], [e for e in read if isinstance(e, Rejection)]


def jsonl(tmp_path: Path, bad: str) -> tuple[list[tuple[int, str, object]], list[Rejection]]:
    return entries(put(tmp_path / "data.jsonl", f"{GOOD}\n{bad}\n{GOOD}\n"), tmp_path)


def array(tmp_path: Path, bad: str) -> tuple[list[tuple[int, str, object]], list[Rejection]]:
    return entries(put(tmp_path / "data.json", f"[{GOOD},\n {bad},\n {GOOD}]"), tmp_path)


BAD_ITEMS = [
    ('{"instruction": "\\ud800", "output": "a"}', "invalid_unicode", "\\ud800 is a lone surrogate escape"),
    ('{"instruction": "q", "output": "a", "\\udfff": 1}', "invalid_unicode", "\\udfff is a lone surrogate"),
    (DEEP_LIST, "too_deep", "nested deeper than"),
    ('{"instruction": "q", "output": "a", "x": ' + DEEP_LIST + "}", "too_deep", "nested deeper than"),
    (DEEP_OBJECT, "too_deep", "nested deeper than"),
    ('{"instruction": "q", "output": "a", "n": ' + "7" * 5000 + "}", "number_too_long", "longer than 4300 digits"),
    ('{"instruction": "a", "instruction": "b", "output": "c"}', "duplicate_key", "'instruction'"),
    ('{"instruction" : "a", "output": "c", "instruction"\t:"b"}', "duplicate_key", "'instruction'"),
    ('{"\\u0069nstruction": "a", "instruction": "b", "output": "c"}', "duplicate_key", "'instruction'"),
]


@pytest.mark.parametrize(("bad", "rule", "message"), BAD_ITEMS)
def test_a_bad_json_lines_line_is_quarantined_and_the_others_read(
    tmp_path: Path, bad: str, rule: str, message: str
) -> None:
    kept, rejected = jsonl(tmp_path, bad)
    assert [(row, where) for row, where, _ in kept] == [(0, "line 1"), (2, "line 3")]
    assert [(r.row, r.location, r.rule) for r in rejected] == [(1, "line 2", rule)]
    assert message in rejected[0].message and "\n" not in rejected[0].message
    assert rejected[0].raw is not None and rejected[0].raw == bad[:2000]


@pytest.mark.parametrize(("bad", "rule", "message"), BAD_ITEMS)
def test_a_bad_json_array_item_is_quarantined_and_the_others_read(
    tmp_path: Path, bad: str, rule: str, message: str
) -> None:
    kept, rejected = array(tmp_path, bad)
    assert [(row, where) for row, where, _ in kept] == [(0, "item 0"), (2, "item 2")]
    assert [(r.row, r.location, r.rule) for r in rejected] == [(1, "item 1", rule)]
    assert message in rejected[0].message


@pytest.mark.parametrize(
    "fine",
    [
        '{"instruction": "\\ud83d\\ude00", "output": "a"}',  # a surrogate pair: one character
        '{"instruction": "q", "output": "a", "meta": {"k": 1, "k": 2}}',  # nested keys are not read
        '{"instruction": "say \\"x\\": 1", "output": "a\\" : b"}',  # key marks inside the text
        '{"instruction": "q", "output": "a", "n": ' + "7" * 400 + "}",  # long, within the limit
        '{"instruction": "q", "output": "a", "x": ' + "[" * 900 + "]" * 900 + "}",
    ],
)
def test_items_near_a_rule_are_kept(tmp_path: Path, fine: str) -> None:
    for kept, rejected in (jsonl(tmp_path, fine), array(tmp_path, fine)):
        assert rejected == []
        assert len(kept) == 3 and kept[1][2] == json.loads(fine)


def test_a_json_document_that_is_one_deep_object_is_one_quarantined_line(tmp_path: Path) -> None:
    kept, rejected = entries(put(tmp_path / "deep.json", DEEP_OBJECT), tmp_path)
    assert kept == [] and [(r.location, r.rule) for r in rejected] == [("line 1", "too_deep")]


def test_a_json_array_nested_too_deep_is_one_quarantined_item(tmp_path: Path) -> None:
    kept, rejected = entries(put(tmp_path / "deep.json", DEEP_LIST), tmp_path)
    assert kept == [] and [(r.location, r.rule) for r in rejected] == [("item 0", "too_deep")]


def test_a_file_of_refused_lines_is_json_not_a_file_error(tmp_path: Path) -> None:
    path = put(tmp_path / "dups.jsonl", '{"a": 1, "a": 2}\n{"b": "\\ud800"}\n')
    kept, rejected = entries(path, tmp_path)
    assert kept == [] and [r.rule for r in rejected] == ["duplicate_key", "invalid_unicode"]


def test_a_syntax_error_after_a_deep_item_is_a_file_error_with_its_position(tmp_path: Path) -> None:
    path = put(tmp_path / "broken.json", f'[{DEEP_LIST},\n {GOOD},\n {{"instruction": ]\n]')
    with pytest.raises(SourceFileError, match=r"^broken\.json: invalid JSON at line 3 column 18: ") as error:
        list(iter_json_items(source_file(path, tmp_path)))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"[{DEEP_LIST}, {GOOD}", "the array is not closed"),
        (f"[{DEEP_LIST}}}", "unbalanced"),
        (f"[{DEEP_LIST}] {GOOD}", "extra data after the array"),
        (f"[{DEEP_LIST},]", "Expecting value"),
    ],
)
def test_a_malformed_array_judged_item_by_item_is_one_file_error(tmp_path: Path, text: str, message: str) -> None:
    path = put(tmp_path / "bad.json", text)
    with pytest.raises(SourceFileError, match=r"^bad\.json: invalid JSON at line \d+ column \d+: ") as error:
        list(iter_json_items(source_file(path, tmp_path)))
    assert message in str(error.value)


def test_nan_makes_the_array_be_read_item_by_item_with_the_same_locations(tmp_path: Path) -> None:
    kept, rejected = array(tmp_path, '{"instruction": "q", "output": "a", "score": NaN}')
    assert rejected == [] and [where for _, where, _ in kept] == ["item 0", "item 1", "item 2"]


# --- the scans -------------------------------------------------------------------------------------


def test_object_keys_lists_top_level_key_tokens_only() -> None:
    text = '{"a": {"a": 1, "b": [2, {"a": 3}]}, "b\\"": "x\\": y", "a" : "z"}'
    assert object_keys(text) == ['"a"', '"b\\""', '"a"']


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([None, True, False, 0, -1.5, 10**30])
    if kind in (1, 2, 3):
        return "".join(rng.choice('ab"\\:,[]{} \n\u661f\U0001f600') for _ in range(rng.randrange(6)))
    if kind in (4, 5):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(random_value(rng, 3)): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_array_items_splits_any_array_as_json_does() -> None:
    rng = random.Random(29)
    for _ in range(300):
        values = [random_value(rng) for _ in range(rng.randrange(5))]
        indent = rng.choice([None, 1])
        text = json.dumps(values, ensure_ascii=rng.random() < 0.5, indent=indent)
        items = array_items(text)
        assert [json.loads(item.text) for item in items] == values
        for item, value in zip(items, values, strict=True):
            assert text[item.start :].startswith(item.text)
            if isinstance(value, dict):
                assert [json.loads(key) for key in item.keys] == list(value)
