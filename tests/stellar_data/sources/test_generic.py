"""Generic adapter: JSON / JSONL / CSV / Parquet through a column mapping."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stellar_data.config import from_table
from stellar_data.errors import SourceFileError
from stellar_data.sources.base import RawItem, Rejection
from stellar_data.sources.generic import GenericOptions, read_generic
from tests.helpers import source_file, write_json, write_jsonl

QA = {"instruction": "Question", "output": "Answer"}


def read(path: Path, root: Path, options: dict) -> list[RawItem | Rejection]:
    return list(read_generic(source_file(path, root), from_table(GenericOptions, options), "en"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_with_unnamed_index_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "qa.csv",
        ',Question,Answer\n0,What is a pulsar?,A rotating neutron star.\n1,"Why do stars twinkle?","Turbulence, mostly."\n',
    )

    first, second = read(path, tmp_path, {"columns": QA})

    assert first == RawItem(
        row=0, location="line 2", instruction="What is a pulsar?", input="", output="A rotating neutron star."
    )
    assert (second.row, second.instruction, second.output) == (1, "Why do stars twinkle?", "Turbulence, mostly.")


def test_csv_input_and_id_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.csv", 'qid,q,ctx,a\n17,Translate,天狼星,Sirius\n18,Translate,"多行\n文本",Multi-line\n')

    first, second = read(path, tmp_path, {"columns": {"instruction": "q", "input": "ctx", "output": "a", "id": "qid"}})

    assert (first.instruction, first.input, first.output, first.original_id) == ("Translate", "天狼星", "Sirius", "17")
    assert (second.input, second.original_id) == ("多行\n文本", "18")


def test_csv_mapped_column_missing_from_header_is_a_file_error(tmp_path: Path) -> None:
    path = write(tmp_path / "raw" / "qa.csv", "Question,Response\nq,a\n")

    with pytest.raises(SourceFileError) as error:
        read(path, tmp_path, {"columns": QA})

    assert "raw/qa.csv" in str(error.value)
    assert "'Answer'" in str(error.value)


def test_csv_row_with_extra_cells_is_rejected_and_the_others_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.csv", "Question,Answer\nq1,a1\nq2,a2,stray\nq3,a3\n")

    entries = read(path, tmp_path, {"columns": QA})

    assert [type(e) for e in entries] == [RawItem, Rejection, RawItem]
    bad = entries[1]
    assert (bad.rule, bad.row, bad.location) == ("malformed_csv", 1, "line 3")
    assert [e.instruction for e in entries if isinstance(e, RawItem)] == ["q1", "q3"]


def test_csv_with_bom_reads_the_first_header_name(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "Question,Answer\n问题,答案\n".encode())

    (item,) = read(path, tmp_path, {"columns": QA})

    assert (item.instruction, item.output) == ("问题", "答案")


def test_csv_in_gbk_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_bytes(
        "Question,Answer\n天空为什么是蓝色的,瑞利散射\n星星为什么闪烁,大气湍流\n月亮为什么有相位,日地月位置变化\n".encode(
            "gbk"
        )
    )

    with pytest.raises(SourceFileError, match=r"qa\.csv: not UTF-8"):
        read(path, tmp_path, {"columns": QA})


def test_csv_row_with_an_invalid_byte_is_rejected_as_invalid_utf8(tmp_path: Path) -> None:
    # Known bug: generic._csv_rows checks `has_invalid_utf8(str(values))`; str() of a dict escapes
    # lone surrogates as `\udcff`, so the check never fires and the bad row comes out as a RawItem.
    path = tmp_path / "qa.csv"
    path.write_bytes(
        "Question,Answer\n天空为什么是蓝色的,瑞利散射\n星星为什么闪烁,大气湍流\n".encode()
        + b"\xe6\x9c\x88\xff,bad\n"
        + "月亮为什么有相位,日地月位置变化\n".encode()
    )

    entries = read(path, tmp_path, {"columns": QA})

    assert [type(e) for e in entries] == [RawItem, RawItem, Rejection, RawItem]
    assert (entries[2].rule, entries[2].location) == ("invalid_utf8", "line 4")


# --- JSON / JSONL ------------------------------------------------------------------------------


def test_jsonl_with_mapping_and_missing_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"id": 7, "prompt": "Define parallax.", "response": "Apparent shift of a star."},
            {"id": 8, "prompt": "Define albedo."},
        ],
    )

    good, bad = read(path, tmp_path, {"columns": {"instruction": "prompt", "output": "response", "id": "id"}})

    assert good == RawItem(
        row=0,
        location="line 1",
        instruction="Define parallax.",
        input="",
        output="Apparent shift of a star.",
        original_id="7",
    )
    assert isinstance(bad, Rejection)
    assert (bad.rule, bad.location) == ("missing_field", "line 2")
    assert "response" in bad.message


def test_json_array_with_optional_input_column(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "qa.json",
        [{"q": "Convert", "c": "1 AU", "a": "1.496e8 km"}, {"q": "Name the closest star.", "a": "Proxima Centauri"}],
    )

    first, second = read(path, tmp_path, {"columns": {"instruction": "q", "input": "c", "output": "a"}})

    assert (first.location, first.input, first.output) == ("item 0", "1 AU", "1.496e8 km")
    assert (second.input, second.output, second.original_id) == ("", "Proxima Centauri", None)


# --- Parquet -----------------------------------------------------------------------------------


def test_parquet_with_mapping(tmp_path: Path) -> None:
    path = tmp_path / "qa.parquet"
    pq.write_table(
        pa.table(
            {
                "uid": [1, 2],
                "Question": ["什么是黑洞？", "What is a quasar?"],
                "Answer": ["引力极强的天体。", "An active galactic nucleus."],
                "extra": [0.1, 0.2],
            }
        ),
        path,
    )

    entries = read(path, tmp_path, {"columns": {**QA, "id": "uid"}})

    assert entries == [
        RawItem(
            row=0, location="row 0", instruction="什么是黑洞？", input="", output="引力极强的天体。", original_id="1"
        ),
        RawItem(
            row=1,
            location="row 1",
            instruction="What is a quasar?",
            input="",
            output="An active galactic nucleus.",
            original_id="2",
        ),
    ]


def test_parquet_mapped_column_missing_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "data" / "qa.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"Question": ["q"], "Reply": ["a"]}), path)

    with pytest.raises(SourceFileError, match=r"data/qa\.parquet: .*'Answer'"):
        read(path, tmp_path, {"columns": QA})


def test_file_that_is_not_parquet_is_a_file_error(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.parquet", "Question,Answer\nq,a\n")

    with pytest.raises(SourceFileError, match=r"qa\.parquet"):
        read(path, tmp_path, {"columns": QA})


# --- format ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qa.jsonl", "qa.ndjson", "QA.JSONL"])
def test_format_auto_from_the_extension(tmp_path: Path, name: str) -> None:
    path = write_jsonl(tmp_path / name, [{"Question": "q", "Answer": "a"}])

    (item,) = read(path, tmp_path, {"columns": QA})

    assert (item.instruction, item.output) == ("q", "a")


def test_unknown_extension_is_a_file_error_unless_the_format_is_set(tmp_path: Path) -> None:
    path = write(tmp_path / "raw" / "qa.txt", "Question,Answer\nq,a\n")

    with pytest.raises(SourceFileError, match=r"raw/qa\.txt: .*format"):
        read(path, tmp_path, {"columns": QA})

    (item,) = read(path, tmp_path, {"columns": QA, "format": "csv"})
    assert (item.instruction, item.output) == ("q", "a")
