"""The corpus README.md: a short dataset card whose YAML `configs:` name each data folder, so
`datasets.load_dataset(DIR)` finds the splits (and the Hub's viewer does, once published)."""

from __future__ import annotations

from typing import Any


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
