"""write_split: a split's shards and train.json in one ordered pass over the record table."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from stellar_data.record import RECORD_FIELDS, RECORD_SCHEMA
from stellar_data.writers.ordered import SplitRecords
from stellar_data.writers.splits import write_split
from stellar_data.writers.train_json import write_train_json


def table(n: int) -> pl.DataFrame:
    records = pl.from_arrow(RECORD_SCHEMA.empty_table())
    rows = pl.DataFrame(
        {
            "id": [f"s:{i}" for i in range(n)],
            "instruction": [f"问题 {i}" for i in range(n)],
            "input": ["" if i % 3 else f"input {i}" for i in range(n)],
            "output": [f"answer {i} " * (i % 5 + 1) for i in range(n)],
            "category": ["general"] * n,
            "source": ["s"] * n,
            "lang": ["en"] * n,
            "group": [f"s:{i}" for i in range(n)],
            "source_file": ["f.json"] * n,
            "source_row": list(range(n)),
            "template_id": [None] * n,
            "original_id": [None] * n,
            "copy_index": [0] * n,
        }
    )
    return pl.concat([records, rows.cast(records.schema)]).with_row_index("_table_row")


def split_of(n: int) -> SplitRecords:
    records = table(n)
    # every record once, one of them twice (a mixture copy), in a shuffled order
    final = pl.concat(
        [records, records.head(1).with_columns(pl.lit("s:0:c1").alias("id"), pl.lit(1).alias("copy_index"))]
    )
    final = final.with_columns(
        pl.lit("train").alias("split"), ((pl.col("source_row") * 7919 + pl.col("copy_index")) % 101).alias("_order")
    )
    return SplitRecords.of(records, final, "train")


@pytest.mark.parametrize(
    ("n", "shard_records", "row_group"), [(0, 10, 4), (1, 10, 4), (23, 10, 4), (23, 5, 10), (30, 7, 3)]
)
def test_shards_and_train_json_hold_the_split_in_order(
    tmp_path: Path, n: int, shard_records: int, row_group: int
) -> None:
    split = split_of(n)
    written = write_split(split, tmp_path / "data", "train", shard_records, tmp_path / "train.json", row_group)
    expected = split.slice(0) if split.height else pl.from_arrow(RECORD_SCHEMA.empty_table())
    count = -(-split.height // shard_records)
    assert [p.name for p in written.paths] == [f"train-{i:05d}-of-{count:05d}.parquet" for i in range(count)]
    if written.paths:
        shards = [pq.read_table(p) for p in written.paths]
        assert all(t.schema == RECORD_SCHEMA for t in shards)
        assert [t.num_rows for t in shards] == [
            min(shard_records, split.height - i * shard_records) for i in range(count)
        ]
        for path in written.paths:
            groups = pq.ParquetFile(path).metadata
            assert all(
                groups.row_group(g).num_rows <= min(row_group, shard_records) for g in range(groups.num_row_groups)
            )
        assert pl.concat([pl.from_arrow(t) for t in shards]).equals(expected.select(RECORD_FIELDS))
        assert written.num_bytes == sum(t.nbytes for t in shards)
    reference = tmp_path / "reference.json"
    write_train_json(expected, reference)
    assert (tmp_path / "train.json").read_bytes() == reference.read_bytes()
    assert [r["instruction"] for r in json.loads(reference.read_text())] == expected["instruction"].to_list()


def test_a_copy_is_written_with_its_own_id_and_copy_index(tmp_path: Path) -> None:
    split = split_of(5)
    written = write_split(split, tmp_path / "data", "train", 100)
    rows = pl.read_parquet(written.paths[0])
    assert rows.height == 6
    copies = rows.filter(pl.col("source_row") == 0).sort("copy_index")
    assert copies.select("id", "copy_index").rows() == [("s:0", 0), ("s:0:c1", 1)]
    assert not (tmp_path / "train.json").exists()


def test_the_same_split_writes_the_same_bytes(tmp_path: Path) -> None:
    first = write_split(split_of(40), tmp_path / "a", "train", 16, tmp_path / "a.json")
    second = write_split(split_of(40), tmp_path / "b", "train", 16, tmp_path / "b.json")
    assert [p.read_bytes() for p in first.paths] == [p.read_bytes() for p in second.paths]
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_only_few_valued_columns_are_dictionary_encoded(tmp_path: Path) -> None:
    """Texts and ids are written as plain pages (a dictionary is wasted work on them); the category,
    source and other columns of few values keep their dictionary."""
    written = write_split(split_of(200), tmp_path / "data", "train", 1000)
    row_group = pq.ParquetFile(written.paths[0]).metadata.row_group(0)
    encodings = {
        row_group.column(i).path_in_schema: set(row_group.column(i).encodings) for i in range(row_group.num_columns)
    }
    for name in ("id", "instruction", "input", "output", "group", "source_row"):
        assert "RLE_DICTIONARY" not in encodings[name], name
    for name in ("category", "source", "lang", "source_file", "copy_index"):
        assert "RLE_DICTIONARY" in encodings[name], name
