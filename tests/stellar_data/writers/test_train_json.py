"""train.json: a JSON list, one record per line, the bytes Python's json module would write."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from stellar_data.writers.train_json import write_train_json

TRICKY = ['quote " and \\ backslash', "line\nbreak\ttab", "\x01\x1f\x7f controls", "中文\u2028\u2029", "😀 /", ""]


def frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "instruction": [f"q{i} {TRICKY[i % len(TRICKY)]}" for i in range(n)],
            "input": [TRICKY[(i + 1) % len(TRICKY)] for i in range(n)],
            "output": [TRICKY[(i + 2) % len(TRICKY)] for i in range(n)],
            "category": ["general"] * n,
        }
    )


def expected_bytes(records: pl.DataFrame) -> bytes:
    lines = [
        json.dumps({k: r[k] for k in ("instruction", "input", "output")}, ensure_ascii=False, separators=(",", ":"))
        for r in records.iter_rows(named=True)
    ]
    return (
        "[\n" + "".join(line + (",\n" if i < len(lines) - 1 else "\n") for i, line in enumerate(lines)) + "]\n"
    ).encode()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
@pytest.mark.parametrize("batch_rows", [1, 2, 3, 100])
def test_bytes_equal_json_dumps_across_batch_boundaries(tmp_path: Path, n: int, batch_rows: int) -> None:
    records = frame(n)
    write_train_json(records, tmp_path / "train.json", batch_rows=batch_rows)
    written = (tmp_path / "train.json").read_bytes()
    assert written == expected_bytes(records)
    assert json.loads(written) == records.select("instruction", "input", "output").to_dicts()


def test_only_the_triple_is_written(tmp_path: Path) -> None:
    write_train_json(frame(2), tmp_path / "train.json")
    assert all(set(r) == {"instruction", "input", "output"} for r in json.loads((tmp_path / "train.json").read_text()))
