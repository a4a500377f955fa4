"""Shared readers: UTF-8 decoding, JSON arrays and JSON Lines, file-level vs record-level problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stellar_data.errors import SourceFileError
from stellar_data.sources.alpaca import AlpacaOptions, read_alpaca
from stellar_data.sources.base import RawItem, Rejection, each_item
from stellar_data.sources.files import BLOCK, complete_prefix, excerpt, file_is_utf8, is_utf8, iter_json_items
from tests.conftest import ROOT
from tests.helpers import source_file

RECORDS = [
    {"instruction": "天空为什么是蓝色的？", "input": "", "output": "因为瑞利散射。"},
    {"instruction": "星星为什么闪烁？", "input": "", "output": "因为大气湍流。"},
    {"instruction": "月亮为什么有相位？", "input": "", "output": "因为日地月的相对位置变化。"},
    {"instruction": "什么是光年？", "input": "", "output": "光在一年中走过的距离。"},
]


def jsonl_bytes(records: list[dict], encoding: str = "utf-8") -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(encoding)


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def items(path: Path, root: Path) -> list:
    return list(iter_json_items(source_file(path, root)))


def alpaca(path: Path, root: Path) -> list[RawItem | Rejection]:
    return list(each_item(read_alpaca(source_file(path, root), AlpacaOptions(), "zh")))


# --- encoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["zh.jsonl", "zh.json"])
def test_gbk_file_is_a_file_error_that_names_the_file(tmp_path: Path, name: str) -> None:
    data = jsonl_bytes(RECORDS, "gbk") if name.endswith("l") else json.dumps(RECORDS, ensure_ascii=False).encode("gbk")
    path = put(tmp_path / "raw" / name, data)

    with pytest.raises(SourceFileError) as error:
        items(path, tmp_path)

    assert str(error.value).startswith(f"raw/{name}: ")
    assert "not UTF-8" in str(error.value)


def test_gbk_json_array_whose_bytes_break_json_syntax_is_still_reported_as_not_utf8(tmp_path: Path) -> None:
    # 淺 is 0x9C 0x5C in GBK: its trail byte is a backslash, which escapes the closing quote.
    # Known bug: _iter_json_array parses before checking the encoding and reports "invalid JSON".
    records = [{"instruction": "淺色的星是什麼？", "input": "", "output": "表面溫度較高的恆星。"}, *RECORDS]
    path = put(tmp_path / "tw.json", json.dumps(records, ensure_ascii=False).encode("gbk"))

    with pytest.raises(SourceFileError, match=r"^tw\.json: not UTF-8"):
        items(path, tmp_path)


def test_jsonl_line_with_an_invalid_byte_is_rejected_and_the_rest_is_read(tmp_path: Path) -> None:
    good = jsonl_bytes(RECORDS)
    bad = '{"instruction": "银河'.encode() + b"\xff" + '系", "input": "", "output": "坏"}\n'.encode()
    lines = good.splitlines(keepends=True)
    path = put(tmp_path / "zh.jsonl", b"".join([*lines[:2], bad, *lines[2:]]))

    entries = alpaca(path, tmp_path)

    assert [type(e) for e in entries] == [RawItem, RawItem, Rejection, RawItem, RawItem]
    rejection = entries[2]
    assert (rejection.rule, rejection.row, rejection.location) == ("invalid_utf8", 2, "line 3")
    assert rejection.raw is not None and "银河\ufffd系" in rejection.raw
    assert [e.instruction for e in entries if isinstance(e, RawItem)] == [r["instruction"] for r in RECORDS]


def test_json_array_record_with_an_invalid_byte_is_rejected_and_the_rest_is_read(tmp_path: Path) -> None:
    text = json.dumps(
        [*RECORDS[:1], {"instruction": "银河@系", "input": "", "output": "坏"}, *RECORDS[1:]], ensure_ascii=False
    )
    path = put(tmp_path / "zh.json", text.encode().replace(b"@", b"\xff"))

    entries = alpaca(path, tmp_path)

    assert [type(e) for e in entries] == [RawItem, Rejection, RawItem, RawItem, RawItem]
    assert (entries[1].rule, entries[1].location) == ("invalid_utf8", "item 1")
    assert [e.output for e in entries if isinstance(e, RawItem)] == [r["output"] for r in RECORDS]


@pytest.mark.parametrize("name", ["bom.jsonl", "bom.json"])
def test_utf8_bom_is_accepted(tmp_path: Path, name: str) -> None:
    data = jsonl_bytes(RECORDS[:2]) if name.endswith("l") else json.dumps(RECORDS[:2], ensure_ascii=False).encode()
    path = put(tmp_path / name, b"\xef\xbb\xbf" + data)

    entries = alpaca(path, tmp_path)

    assert [e.instruction for e in entries] == [r["instruction"] for r in RECORDS[:2]]


# --- file-level problems -----------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"  \n\n", b"\xef\xbb\xbf"])
def test_empty_file_is_a_file_error(tmp_path: Path, data: bytes) -> None:
    path = put(tmp_path / "raw" / "empty.json", data)

    with pytest.raises(SourceFileError, match=r"^raw/empty\.json: .*empty"):
        items(path, tmp_path)


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match=r"^gone\.jsonl: .*not found"):
        items(tmp_path / "gone.jsonl", tmp_path)


def test_json_array_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = put(
        tmp_path / "broken.json",
        b'[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c", "output": "d",}\n]\n',
    )

    with pytest.raises(SourceFileError, match=r"^broken\.json: invalid JSON at line 3 column \d+"):
        items(path, tmp_path)


def test_file_where_no_line_parses_as_json_is_a_file_error(tmp_path: Path) -> None:
    path = put(tmp_path / "notes.jsonl", "instruction: 你好\noutput: 我是助手\n".encode())

    with pytest.raises(SourceFileError, match=r"^notes\.jsonl: not JSON or JSON Lines"):
        items(path, tmp_path)


def test_pretty_printed_top_level_object_is_a_file_error(tmp_path: Path) -> None:
    path = put(tmp_path / "one.json", json.dumps(RECORDS[0], ensure_ascii=False, indent=2).encode())

    with pytest.raises(SourceFileError, match=r"^one\.json: "):
        items(path, tmp_path)


# --- record-level problems ---------------------------------------------------------------------


def test_one_object_per_line_is_json_lines(tmp_path: Path) -> None:
    path = put(tmp_path / "one.json", json.dumps(RECORDS[0], ensure_ascii=False).encode())

    assert items(path, tmp_path) == [(0, "line 1", RECORDS[0])]


def test_blank_lines_are_skipped_and_locations_count_physical_lines(tmp_path: Path) -> None:
    path = put(tmp_path / "gaps.jsonl", b'{"a": 1}\n\n  \n{"a": 2}\r\n')

    assert [(location, value) for _, location, value in items(path, tmp_path)] == [
        ("line 1", {"a": 1}),
        ("line 4", {"a": 2}),
    ]


def test_a_line_of_unicode_spaces_is_blank_and_a_bad_line_keeps_its_text(tmp_path: Path) -> None:
    path = put(tmp_path / "spaces.jsonl", '{"a": 1}\n\u3000\u3000\r\n{"a": 天}\r\n{"a": 2}'.encode())

    entries = items(path, tmp_path)
    assert [(e[1], e[2]) for e in entries if not isinstance(e, Rejection)] == [
        ("line 1", {"a": 1}),
        ("line 4", {"a": 2}),
    ]
    (bad,) = [e for e in entries if isinstance(e, Rejection)]
    assert (bad.location, bad.rule, bad.raw) == ("line 3", "malformed_json", '{"a": 天}\r')


def test_non_object_items_are_rejected_as_not_an_object(tmp_path: Path) -> None:
    lines = [
        json.dumps(RECORDS[0], ensure_ascii=False),
        '"just a string"',
        "[1, 2]",
        "42",
        json.dumps(RECORDS[1], ensure_ascii=False),
    ]
    jsonl = put(tmp_path / "mixed.jsonl", ("\n".join(lines) + "\n").encode())
    array = put(
        tmp_path / "mixed.json",
        json.dumps([RECORDS[0], "just a string", None, RECORDS[1]], ensure_ascii=False).encode(),
    )

    from_lines = alpaca(jsonl, tmp_path)
    from_array = alpaca(array, tmp_path)

    assert [e.rule for e in from_lines if isinstance(e, Rejection)] == ["not_an_object"] * 3
    assert [e.location for e in from_lines if isinstance(e, Rejection)] == ["line 2", "line 3", "line 4"]
    assert [e.rule for e in from_array if isinstance(e, Rejection)] == ["not_an_object"] * 2
    assert [e.location for e in from_array if isinstance(e, Rejection)] == ["item 1", "item 2"]
    assert [e.instruction for e in from_lines + from_array if isinstance(e, RawItem)] == [
        RECORDS[0]["instruction"],
        RECORDS[1]["instruction"],
    ] * 2


_UTF8_CASES = [
    b"",
    b"plain ASCII",
    "星语者 and 𝔸".encode(),
    "星语者".encode()[:-1],  # a character cut short
    b"\xff",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xc0\xaf",  # an overlong form
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    "天文".encode("gb18030"),
    b"ok\n" * 1000 + b"\xe6",
]


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("data", _UTF8_CASES)
def test_is_utf8_agrees_with_pythons_decoder(data: bytes) -> None:
    assert is_utf8(data) is _decodes(data)


def test_is_utf8_agrees_with_pythons_decoder_on_the_real_sources(shared_sources: Path) -> None:
    paths = sorted(p for p in shared_sources.rglob("*") if p.is_file())
    assert len(paths) > 10
    for path in paths:
        data = path.read_bytes()
        assert is_utf8(data) is _decodes(data), path


# --- block reads -------------------------------------------------------------------------------


_STRADDLING = [(char, cut) for char in ("é", "星", "𝔸") for cut in range(len(char.encode()))]


@pytest.mark.parametrize(("char", "cut"), _STRADDLING)
@pytest.mark.parametrize("valid", [True, False])
def test_file_is_utf8_is_exact_across_block_boundaries(tmp_path: Path, char: str, cut: int, valid: bool) -> None:
    encoded = char.encode()  # its first `cut` bytes end the first block
    tail = encoded if valid else encoded[:-1] + b"A"  # the last continuation byte broken
    data = b"a" * (BLOCK - cut) + tail + b"z" * 10
    path = put(tmp_path / "f.txt", data)
    assert file_is_utf8(source_file(path, tmp_path)) is _decodes(data) is valid


@pytest.mark.parametrize("ending", [b"\xe6", b"\xe6\x98", b"\xf0\x9d\x94", b"\xc3"])
def test_file_is_utf8_refuses_a_sequence_cut_short_at_the_end(tmp_path: Path, ending: bytes) -> None:
    for size in (10, BLOCK - len(ending), BLOCK):
        path = put(tmp_path / "f.txt", b"a" * size + ending)
        assert file_is_utf8(source_file(path, tmp_path)) is False


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0), (b"ab", 2), (b"a\xc3", 1), (b"a\xc3\xa9", 3), (b"\xe6\x98", 0), (b"\xf0\x9d\x94", 0), (b"\xff", 1)],
)
def test_complete_prefix_leaves_out_only_an_unfinished_sequence(data: bytes, expected: int) -> None:
    assert complete_prefix(data) == expected


_TRUNCATE_WHILE_READING = """
import os, sys, threading, time
from pathlib import Path
from stellar_data.sources.base import SourceFile
from stellar_data.sources.files import file_is_utf8, line_spans

path = Path(sys.argv[1])
data = ("星" * 1000 + "\\n").encode() * 8000  # 24 MB
for attempt in range(20):
    path.write_bytes(data)
    cut = threading.Thread(target=lambda: (time.sleep(0.002 * (attempt % 5)), os.truncate(path, 4096)))
    cut.start()
    file_is_utf8(SourceFile(path, path.name))
    line_spans(path, 1 << 20)
    cut.join()
"""


def test_a_file_truncated_while_it_is_read_does_not_kill_the_process(tmp_path: Path) -> None:
    # A memory map of a file cut short under it raises SIGBUS on the next access: the process dies.
    script = put(tmp_path / "truncate.py", _TRUNCATE_WHILE_READING.encode())
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "data.jsonl")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


# --- excerpts ----------------------------------------------------------------------------------


def test_an_excerpt_of_a_value_too_deep_to_serialize_describes_it() -> None:
    value: list = []
    for _ in range(5000):
        value = [value]
    assert excerpt(value) == "<list too deeply nested to show>"


def test_an_excerpt_never_holds_a_lone_surrogate() -> None:
    assert excerpt({"a": "x\ud800"}) == '{"a": "x\ufffd"}'
    assert excerpt("y\udcff" * 3000) == "y\ufffd" * 1000
