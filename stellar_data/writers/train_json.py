"""train.json in alpaca-lora's format: one JSON list of {instruction, input, output}.

One record per line inside the list, so the file is diffable. polars encodes the lines (the same
bytes as Python's `json.dumps(..., ensure_ascii=False, separators=(",", ":"))`) and writes them as
a one-column headerless CSV with no quoting, i.e. verbatim: a Python call per record, or a round
trip of the text through Python strings, would cost several times more. Batches bound the memory.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

_ENCODED = pl.struct("instruction", "input", "output").struct.json_encode()


def _lines(last_batch: bool) -> pl.Expr:
    """Every line but the file's last ends with a comma."""
    with_comma = pl.concat_str(_ENCODED, pl.lit(","))
    if not last_batch:
        return with_comma.alias("line")
    return pl.when(pl.int_range(pl.len()) < pl.len() - 1).then(with_comma).otherwise(_ENCODED).alias("line")


class TrainJsonSink:
    """Writes train.json batch by batch, in order; `total` records in all (the last line has no comma)."""

    def __init__(self, path: Path, total: int) -> None:
        self._handle = path.open("wb")
        self._handle.write(b"[\n")
        self._total = total
        self._written = 0

    def write(self, batch: pl.DataFrame) -> None:
        self._written += batch.height
        lines = batch.select(_lines(last_batch=self._written == self._total))
        lines.write_csv(self._handle, include_header=False, quote_style="never")

    def close(self) -> None:
        self._handle.write(b"]\n")
        self._handle.close()


def write_train_json(frame: pl.DataFrame, path: Path, batch_rows: int = 100_000) -> None:
    sink = TrainJsonSink(path, frame.height)
    for offset in range(0, frame.height, batch_rows):
        sink.write(frame.slice(offset, batch_rows))
    sink.close()
