"""Generic adapter, Parquet: a file whose footer is valid but whose data is damaged fails while its
batches are read, mid-file; that is one SourceFileError naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stellar_data.errors import SourceFileError
from stellar_data.sources.base import RawItem
from stellar_data.sources.generic import GenericOptions, read_generic
from tests.helpers import source_file

COLUMNS = {"columns": {"instruction": "q", "output": "a"}}
ROWS = 4000


def write_parquet(path: Path) -> Path:
    table = pa.table({"q": [f"question {i} " * 4 for i in range(ROWS)], "a": [f"answer {i}" for i in range(ROWS)]})
    pq.write_table(table, path, row_group_size=1000, compression="none", use_dictionary=False)
    return path


def garble_row_group(path: Path, row_group: int) -> None:
    """Overwrite the middle of one row group's `q` column chunk (its data page); footer untouched."""
    chunk = pq.ParquetFile(path).metadata.row_group(row_group).column(0)
    start = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[start : start + 256] = b"\xff" * 256
    path.write_bytes(bytes(data))


def read(path: Path) -> list:
    return list(read_generic(source_file(path), GenericOptions(**COLUMNS), "en"))


def test_a_valid_parquet_file_is_read_whole(tmp_path: Path) -> None:
    items = read(write_parquet(tmp_path / "d.parquet"))

    assert len(items) == ROWS and all(isinstance(i, RawItem) for i in items)
    assert (items[-1].location, items[-1].output) == (f"row {ROWS - 1}", f"answer {ROWS - 1}")


@pytest.mark.parametrize("row_group", [0, 2])
def test_a_damaged_data_page_is_one_file_error(tmp_path: Path, row_group: int) -> None:
    path = write_parquet(tmp_path / "d.parquet")
    garble_row_group(path, row_group)
    assert pq.ParquetFile(path).metadata.num_rows == ROWS  # the footer still reads: only the data is damaged

    with pytest.raises(SourceFileError) as caught:
        read(path)

    message = str(caught.value)
    assert message.startswith("d.parquet: damaged Parquet data at or after row ") and "\n" not in message


def test_a_truncated_parquet_file_is_one_file_error(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "d.parquet")
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(SourceFileError, match=r"^d\.parquet: not a readable Parquet file"):
        read(path)
