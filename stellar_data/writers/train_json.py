"""train.json in alpaca-lora's format: one JSON list of {instruction, input, output}.

One record per line inside the list, so the file is diffable and streams in constant memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

_BATCH = 50_000


def write_train_json(frame: pl.DataFrame, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("[")
        first = True
        for offset in range(0, frame.height, _BATCH):
            batch = frame.slice(offset, _BATCH).select("instruction", "input", "output")
            for instruction, input_, output in batch.iter_rows():
                handle.write("\n" if first else ",\n")
                handle.write(
                    json.dumps({"instruction": instruction, "input": input_, "output": output}, ensure_ascii=False)
                )
                first = False
        handle.write("\n]\n")
