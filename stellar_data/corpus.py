"""A built corpus directory, opened for analysis (no rebuilding)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import CorpusDirError


class Corpus:
    """What `build` returns and `load` opens.

    `.frame` is a lazy polars frame over the train shards (`.frame_of("validation")` for the
    other split, `.table_of("astro_qa_heldout")` for the held-out benchmark), `.table` the train
    split as Arrow, `.stats()` one row of counts per source, `.quarantine` every rejected item with
    its reason, `.manifest` the full manifest.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            raise CorpusDirError(f"{self.path}: not a built corpus (no manifest.json)")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        splits = ", ".join(f"{k}={v['records']}" for k, v in self.manifest["splits"].items())
        return f"Corpus({str(self.path)!r}, {splits})"

    @property
    def splits(self) -> list[str]:
        return [name for name, info in self.manifest["splits"].items() if info["shards"]]

    def shard_paths(self, split: str) -> list[Path]:
        if split not in self.manifest["splits"]:
            raise KeyError(f"no split {split!r} in {self.path} (splits: {', '.join(self.manifest['splits'])})")
        return [self.path / shard for shard in self.manifest["splits"][split]["shards"]]

    def frame_of(self, split: str) -> pl.LazyFrame:
        paths = self.shard_paths(split)
        if not paths:
            return pl.LazyFrame(schema=self._empty_schema())
        return pl.scan_parquet([str(p) for p in paths])

    @property
    def frame(self) -> pl.LazyFrame:
        return self.frame_of("train")

    def table_of(self, name: str) -> pl.LazyFrame:
        """A table outside data/ with its own schema, e.g. `astro_qa_heldout` (the held-out benchmark)."""
        tables = self.manifest.get("tables", {})
        if name not in tables:
            raise KeyError(f"no table {name!r} in {self.path} (tables: {', '.join(tables) or 'none'})")
        return pl.scan_parquet([str(self.path / f) for f in tables[name]["shards"]])

    @cached_property
    def table(self) -> pa.Table:
        from .record import RECORD_SCHEMA

        paths = self.shard_paths("train")
        return pa.concat_tables([pq.read_table(p) for p in paths]) if paths else RECORD_SCHEMA.empty_table()

    @property
    def quarantine(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / "quarantine.parquet")

    def stats(self) -> pl.DataFrame:
        """One row per source: items read, quarantined, excluded, valid, duplicates, held out, kept, in
        train and validation; and records per split after template expansion."""
        from .pipeline import summary_row

        rows = []
        for name, source in self.manifest["sources"].items():
            row = {"source": name, "category": source["category"], "status": source["status"]}
            rows.append(row | summary_row(source["counts"]))
        return pl.DataFrame(rows)

    @staticmethod
    def _empty_schema() -> pl.Schema:
        from .record import RECORD_SCHEMA, frame_schema

        return frame_schema(RECORD_SCHEMA)


def load(path: str | Path) -> Corpus:
    """Open a built corpus directory without rebuilding it."""
    return Corpus(path)
