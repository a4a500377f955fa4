"""CSV through the generic adapter: a record's location is the line it starts on, fields of any size
are read, and a quote left open costs only its own line."""

from __future__ import annotations

from pathlib import Path

import pytest

from stellar_data.config import from_table
from stellar_data.errors import SourceFileError
from stellar_data.sources.base import RawItem, Rejection
from stellar_data.sources.generic import GenericOptions, read_generic
from tests.helpers import source_file

QA = {"columns": {"instruction": "Q", "output": "A"}}


def read(tmp_path: Path, text: str, options: dict | None = None) -> list[RawItem | Rejection]:
    path = tmp_path / "qa.csv"
    path.write_bytes(text.encode("utf-8"))
    entries = list(read_generic(source_file(path, tmp_path), from_table(GenericOptions, options or QA), "en"))
    assert entries, "nothing read"
    return entries


def summary(entries: list[RawItem | Rejection]) -> list[tuple]:
    return [
        (e.row, e.location, e.rule) if isinstance(e, Rejection) else (e.row, e.location, e.instruction, e.output)
        for e in entries
    ]


def test_a_field_far_over_csvs_default_limit_is_read(tmp_path: Path) -> None:
    huge = "星" * 300_000  # csv's default limit is 131,072 characters
    entries = read(tmp_path, f'Q,A\nq1,"{huge}"\nq2,a2\n')
    assert summary(entries) == [(0, "line 2", "q1", huge), (1, "line 3", "q2", "a2")]


def test_an_unclosed_quote_costs_only_its_own_line(tmp_path: Path) -> None:
    entries = read(tmp_path, 'Q,A\nq1,a1\n"q2,a2\nq3,a3\nq4,a4\n')
    assert summary(entries) == [
        (0, "line 2", "q1", "a1"),
        (1, "line 3", "malformed_csv"),
        (2, "line 4", "q3", "a3"),
        (3, "line 5", "q4", "a4"),
    ]
    assert "unclosed quote" in entries[1].message
    assert entries[1].raw == '"q2,a2\n'


def test_an_unclosed_quote_that_a_later_quote_closes_still_costs_only_its_line(tmp_path: Path) -> None:
    entries = read(tmp_path, 'Q,A\n"q2,a2\nq3,a3\nq4,"a4"\nq5,a5')
    assert summary(entries) == [
        (0, "line 2", "malformed_csv"),
        (1, "line 3", "q3", "a3"),
        (2, "line 4", "q4", "a4"),
        (3, "line 5", "q5", "a5"),
    ]


def test_a_closed_multi_line_record_with_extra_cells_is_one_rejection(tmp_path: Path) -> None:
    entries = read(tmp_path, 'Q,A\nq1,"a\nb",extra\nq2,a2\n')
    assert summary(entries) == [(0, "line 2", "malformed_csv"), (1, "line 4", "q2", "a2")]
    assert entries[0].message == "more cells than header columns"


def test_a_multi_line_record_is_located_on_the_line_it_starts(tmp_path: Path) -> None:
    entries = read(tmp_path, 'Q,A\nq1,"one\ntwo\nthree"\n\nq2,a2\r\nq3,"x\ry"\rq4,a4\n')
    assert summary(entries) == [
        (0, "line 2", "q1", "one\ntwo\nthree"),
        (1, "line 6", "q2", "a2"),
        (2, "line 7", "q3", "x\ry"),
        (3, "line 9", "q4", "a4"),
    ]


def test_blank_lines_before_the_header_are_skipped(tmp_path: Path) -> None:
    assert summary(read(tmp_path, "\n\nQ,A\nq,a\n")) == [(0, "line 4", "q", "a")]


def test_a_mapped_column_written_twice_in_the_header_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match=r"^qa\.csv: column\(s\) 'A' appear more than once in the header$"):
        read(tmp_path, "Q,A,A\nq,a1,a2\n")


def test_an_unmapped_column_written_twice_is_not_read(tmp_path: Path) -> None:
    assert summary(read(tmp_path, "x,Q,x,A\n1,q,2,a\n")) == [(0, "line 2", "q", "a")]


def test_a_missing_column_error_shows_a_short_header(tmp_path: Path) -> None:
    header = ",".join(f"column_{i}_{'x' * 60}" for i in range(50))
    with pytest.raises(SourceFileError, match=r"^qa\.csv: column\(s\) 'Q', 'A' not in the file's header") as error:
        read(tmp_path, f"{header}\n")
    assert len(str(error.value)) < 1500 and "\n" not in str(error.value)


def test_nul_bytes_stay_in_their_cell(tmp_path: Path) -> None:
    assert summary(read(tmp_path, "Q,A\nq\x00,a\n")) == [(0, "line 2", "q\x00", "a")]


@pytest.mark.parametrize("bad_id", ["[1, 2]", '{"k": 1}'])
def test_an_id_that_is_not_a_scalar_is_wrong_type(tmp_path: Path, bad_id: str) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(f'{{"Q": "q", "A": "a", "id": {bad_id}}}\n{{"Q": "q", "A": "a", "id": 7}}\n', encoding="utf-8")
    options = {"columns": {"instruction": "Q", "output": "A", "id": "id"}}
    bad, good = read_generic(source_file(path, tmp_path), from_table(GenericOptions, options), "en")
    assert (bad.rule, bad.location) == ("wrong_type", "line 1")
    assert good.original_id == "7"
