"""A large JSON Lines file is read as line spans, one task each: the spans cover every line exactly
once, and reading them one by one gives what reading the whole file gives (rows, locations, ids,
rejections)."""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import polars as pl
import pytest

from stellar_data.ingest import IngestTask, ingest
from stellar_data.plan import file_parts
from stellar_data.recipe import SourceSpec
from stellar_data.sources import LineSpan
from stellar_data.sources.alpaca import AlpacaOptions, read_alpaca
from stellar_data.sources.base import each_item
from stellar_data.sources.files import BLOCK, line_spans
from tests.helpers import source_file, write_jsonl

GSM8K_TEST = Path("grade-school-math/grade_school_math/data/test.jsonl")


def test_spans_end_at_line_ends_and_count_the_lines_before_them(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"aaaa\nbb\n\ncccccc\nd\r\neeee")  # no final newline, a blank and a CRLF line
    spans = line_spans(path, 6)
    data = path.read_bytes()
    assert spans[0].start == 0 and spans[-1].stop == len(data)
    for span, following in itertools.pairwise(spans):
        assert span.stop == following.start
        assert data[span.stop - 1 : span.stop] == b"\n"
    for span in spans:
        assert span.first_row == data[: span.start].count(b"\n")
    assert [data[s.start : s.stop] for s in spans] == [b"aaaa\nbb\n", b"\ncccccc\n", b"d\r\neeee"]


def test_a_line_longer_than_the_target_stays_whole(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"x" * 100 + b"\n" + b"y\n")
    assert line_spans(path, 10) == [LineSpan(0, 101, 0), LineSpan(101, 103, 1)]


def test_a_small_file_is_one_span(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"a\nb\n")
    assert line_spans(path, 1 << 20) == [LineSpan(0, 4, 0)]


def alpaca_spec(path: str) -> SourceSpec:
    return SourceSpec(name="a", adapter="alpaca", paths=(path,), category="general", lang="auto", order=0)


def crafted_alpaca(tmp_path: Path) -> Path:
    lines: list = []
    for i in range(300):
        if i % 37 == 5:
            lines.append('{"instruction": "broken')  # malformed JSON
        elif i % 41 == 7:
            lines.append({"instruction": i, "output": "x"})  # wrong type
        elif i % 43 == 9:
            lines.append("")  # blank
        else:
            lines.append({"instruction": f"問題 {i}", "input": "", "output": f"答案 {i % 50}"})
    return write_jsonl(tmp_path / "data.jsonl", lines)


def test_file_parts_cut_only_large_json_lines_files_of_splittable_adapters(tmp_path: Path) -> None:
    path = crafted_alpaca(tmp_path)
    file = source_file(path, tmp_path)
    parts = file_parts(alpaca_spec("data.jsonl"), file, span_bytes=2000)
    assert len(parts) > 3 and all(p.span is not None for p in parts)
    assert file_parts(alpaca_spec("data.jsonl"), file, span_bytes=1 << 20) == [file]
    identity = SourceSpec(
        name="i", adapter="identity", paths=("data.jsonl",), category="identity", lang="auto", order=0
    )
    assert file_parts(identity, file, span_bytes=2000) == [file]
    array = tmp_path / "array.json"
    array.write_text("[" + ",".join(['{"instruction": "q", "output": "a"}'] * 200) + "]", encoding="utf-8")
    assert file_parts(alpaca_spec("array.json"), source_file(array, tmp_path), span_bytes=500) == [
        source_file(array, tmp_path)
    ]


def test_reading_the_spans_gives_the_items_of_the_whole_file(tmp_path: Path) -> None:
    path = crafted_alpaca(tmp_path)
    file = source_file(path, tmp_path)
    whole = list(each_item(read_alpaca(file, AlpacaOptions(), "auto")))
    parts = file_parts(alpaca_spec("data.jsonl"), file, span_bytes=1500)
    assert len(parts) > 3
    by_span = [entry for part in parts for entry in each_item(read_alpaca(part, AlpacaOptions(), "auto"))]
    assert by_span == whole
    assert {type(e).__name__ for e in whole} == {"RawItem", "Rejection"}


def test_ingesting_the_spans_of_a_real_file_gives_the_records_of_the_whole_file(shared_sources: Path) -> None:
    spec = SourceSpec(
        name="gsm8k", adapter="gsm8k", paths=(GSM8K_TEST.as_posix(),), category="math", lang="en", order=0
    )
    file = source_file(shared_sources / GSM8K_TEST, shared_sources)
    parts = file_parts(spec, file, span_bytes=100_000)
    assert len(parts) >= 5

    def run(part):
        return ingest(IngestTask(spec, part, 0, seed=1, protected_terms=()))

    whole = run(file)
    spans = [run(part) for part in parts]
    assert pl.concat([r.records for r in spans]).equals(whole.records)
    assert pl.concat([r.quarantine for r in spans]).equals(whole.quarantine)
    assert sum(r.stats[0].total for r in spans) == whole.stats[0].total
    # the file's checksum is listed once, by the span that starts it
    assert [bool(r.files) for r in spans] == [True] + [False] * (len(spans) - 1)
    assert spans[0].files == whole.files


def test_a_span_with_bad_bytes_quarantines_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    good = b'{"instruction": "q", "output": "a"}\n'
    path.write_bytes(good * 40 + b'{"instruction": "q\xff", "output": "a"}\n' + good * 40)
    file = source_file(path, tmp_path)
    parts = file_parts(alpaca_spec("data.jsonl"), file, span_bytes=600)
    entries = [e for part in parts for e in each_item(read_alpaca(part, AlpacaOptions(), "auto"))]
    assert entries == list(each_item(read_alpaca(file, AlpacaOptions(), "auto")))
    rejected = [e for e in entries if not hasattr(e, "instruction")]
    assert [(r.rule, r.location) for r in rejected] == [("invalid_utf8", "line 41")]


@pytest.mark.parametrize("span_bytes", [64, 10_000])
def test_every_line_is_read_once_whatever_the_span_size(tmp_path: Path, span_bytes: int) -> None:
    path = crafted_alpaca(tmp_path)
    parts = file_parts(alpaca_spec("data.jsonl"), source_file(path, tmp_path), span_bytes=span_bytes)
    spans = [p.span for p in parts if p.span is not None] or [LineSpan(0, path.stat().st_size, 0)]
    assert sum(s.stop - s.start for s in spans) == path.stat().st_size
    rows = [e.row for part in parts for e in each_item(read_alpaca(part, AlpacaOptions(), "auto"))]
    assert rows == sorted(set(rows))


class _CutShort(type(Path())):  # type: ignore[misc]
    """A path whose file was cut short after its size was taken: stat reports 1000 bytes more."""

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        real = super().stat(follow_symlinks=follow_symlinks)
        return os.stat_result((*real[:6], real.st_size + 1000, *real[7:]))


def test_a_file_cut_short_while_its_spans_are_found_ends_where_the_reads_end(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"aaaa\nbb\ncc\n")
    spans = line_spans(_CutShort(path), 3)
    assert spans == [LineSpan(0, 5, 0), LineSpan(5, 11, 1)]  # no span past the end


def _reference_spans(data: bytes, target: int) -> list[LineSpan]:
    """The spans as defined: cut at the first line end at or after `target` bytes past a span's start."""
    spans, start, first = [], 0, 0
    while start + target < len(data) and (at := data.find(b"\n", start + target)) != -1:
        spans.append(LineSpan(start, at + 1, first))
        first += data.count(b"\n", start, at + 1)
        start = at + 1
    if start < len(data) or not spans:
        spans.append(LineSpan(start, len(data), first))
    return spans


@pytest.mark.parametrize("target", [1 << 20, BLOCK - 3, BLOCK, BLOCK + 7, 3 * BLOCK])
def test_spans_are_found_across_block_boundaries(tmp_path: Path, target: int) -> None:
    rng = random.Random(target)
    data = b"".join(b"x" * rng.randrange(0, 300_000) + b"\n" for _ in range(70)) + b"tail"
    assert len(data) > 2 * BLOCK
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    assert line_spans(path, target) == _reference_spans(data, target)
