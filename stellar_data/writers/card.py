"""The corpus README.md: a short dataset card whose YAML `configs:` name each data folder, so
`datasets.load_dataset(DIR)` finds the splits (and the Hub's viewer does, once published).

`dataset_info` gives each config's features (from the explicit Arrow schema) and exact sizes. Beyond
documenting the data, it keys `datasets`' cache: for a local folder that cache is named by the
folder and a hash of the card, not of the files, so without exact sizes a rebuilt corpus (or another
one in a folder of the same name) would be served from the stale cache.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..record import RECORD_SCHEMA
from .heldout import HELDOUT_DIR, HELDOUT_SCHEMA

_TABLE_SCHEMAS = {HELDOUT_DIR: HELDOUT_SCHEMA}
_DTYPES = {pa.string(): "string", pa.int64(): "int64", pa.int32(): "int32", pa.bool_(): "bool", pa.float64(): "float64"}


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _features(schema_fields: list[pa.Field], indent: str) -> list[str]:
    lines = []
    for field in schema_fields:
        lines.append(f"{indent}- name: {field.name}")
        if pa.types.is_list(field.type) and pa.types.is_struct(field.type.value_type):
            lines.append(f"{indent}  list:")
            lines += _features(list(field.type.value_type), indent + "  ")
        else:
            lines.append(f"{indent}  dtype: {_DTYPES[field.type]}")
    return lines


def _dataset_info(config: str, schema: pa.Schema, splits: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"- config_name: {config}", "  features:", *_features(list(schema), "  ")]
    lines.append("  splits:")
    for name, split in splits.items():
        lines += [f"  - name: {name}", f"    num_bytes: {split['num_bytes']}", f"    num_examples: {split['records']}"]
    lines.append(f"  download_size: {sum(s['download_size'] for s in splits.values())}")
    lines.append(f"  dataset_size: {sum(s['num_bytes'] for s in splits.values())}")
    return lines


def render_card(manifest: dict[str, Any]) -> str:
    splits = manifest["splits"]
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in ("train", "validation"):
        if splits.get(split, {}).get("records"):
            lines += [f"  - split: {split}", f"    path: {_yaml_str(f'data/{split}-*.parquet')}"]
    for name in manifest["tables"]:
        lines += [
            f"- config_name: {name}",
            "  data_files:",
            "  - split: test",
            f"    path: {_yaml_str(f'{name}/test-*.parquet')}",
        ]
    lines += ["- config_name: quarantine", "  data_files:", "  - split: quarantine", '    path: "quarantine.parquet"']
    lines += [
        "dataset_info:",
        *_dataset_info("default", RECORD_SCHEMA, {k: v for k, v in splits.items() if v["records"]}),
    ]
    for name, table in manifest["tables"].items():
        lines += _dataset_info(name, _TABLE_SCHEMAS[name], {"test": table})
    languages = sorted(
        {s["lang"] for s in manifest["sources"].values() if s["lang"] != "auto"} | set(manifest["languages"])
    )
    lines += ["language:"] + [f"- {lang}" for lang in languages]
    lines += ["task_categories:", "- text-generation", "---", ""]

    recipe = manifest["recipe"]
    body = [
        f"# {manifest['corpus']}",
        "",
        manifest.get("description") or "Instruction-tuning corpus built by stellar-data.",
        "",
        f"Built from recipe `{recipe['path']}` (sha256 `{recipe['sha256'][:12]}`) with seed {manifest['seed']}.",
        "",
        _row("split", "records"),
        _row("---", "---"),
        *(_row(split, info["records"]) for split, info in splits.items()),
        *(_row(f"{name} (test, own config)", info["records"]) for name, info in manifest["tables"].items()),
        "",
        _row(*_SOURCE_COLUMNS),
        _row(*["---"] * len(_SOURCE_COLUMNS)),
        *(_source_row(name, source) for name, source in manifest["sources"].items()),
        "",
        "```python",
        "import datasets, polars as pl",
        'ds = datasets.load_dataset("path/to/this/folder")',
        'train = pl.scan_parquet("path/to/this/folder/data/train-*.parquet")',
        "```",
        "",
        "`train.json` holds the train split in alpaca-lora's format; `quarantine.parquet` every rejected item",
        "with its reason; `manifest.json` the per-step counts, versions and file checksums.",
        "",
    ]
    return "\n".join(lines + body)


_SOURCE_COLUMNS = (
    "source",
    "category",
    "lang",
    "licence",
    "read",
    "quarantined",
    "excluded",
    "duplicates",
    "train",
    "validation",
)


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _source_row(name: str, source: dict[str, Any]) -> str:
    c = source["counts"]
    return _row(
        name,
        source["category"],
        source["lang"],
        source.get("license") or "unspecified",
        c["read"],
        sum(c["quarantined"].values()),
        sum(c["excluded"].values()),
        c["duplicates"],
        c["held_out"],
        c["train"],
        c["validation"],
        c["records"]["train"],
        c["records"]["validation"],
    )
