"""The dataset card (README.md) of a corpus, locally and on the Hub.

YAML metadata: `configs` (data files per config and split, so `datasets.load_dataset` finds them),
`dataset_info` (features from the explicit Arrow schemas, exact num_examples and num_bytes), licence,
language, task categories, size category, tags. The body: sources with licences and pinned
commits, the recipe, the mixture, the seed, quarantine counts, how to load.

`dataset_info` also keys `datasets`' cache: for a local folder that cache is named by the folder and
a hash of the card, not of the files, so without exact sizes a rebuilt corpus (or another one in a
folder of the same name) would be served from the stale cache.

Publishing merges this metadata into the YAML a repository's card already has (`merge_metadata`):
the keys written here win, every other key is kept.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import yaml

from ..pipeline import SUMMARY_COLUMNS, summary_row
from ..record import RECORD_SCHEMA
from .heldout import HELDOUT_DIR, HELDOUT_SCHEMA

TABLE_SCHEMAS = {HELDOUT_DIR: HELDOUT_SCHEMA}
_COUNTS = tuple(c for c in SUMMARY_COLUMNS if c not in ("valid", "kept", "train", "validation"))
"""The per-source counts the card shows: what was read, what left and why, what was written (the
items per split are in the manifest)."""
_LABELS = {"read": "items read"}
_DTYPES = {pa.string(): "string", pa.int64(): "int64", pa.int32(): "int32", pa.bool_(): "bool", pa.float64(): "float64"}
_SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)


def features(schema_fields: list[pa.Field]) -> list[dict[str, Any]]:
    """`datasets` features in card form, from an Arrow schema (flat fields and lists of structs)."""
    out: list[dict[str, Any]] = []
    for field in schema_fields:
        if pa.types.is_list(field.type) and pa.types.is_struct(field.type.value_type):
            out.append({"name": field.name, "list": features(list(field.type.value_type))})
        else:
            out.append({"name": field.name, "dtype": _DTYPES[field.type]})
    return out


def _dataset_info(config: str, schema: pa.Schema, splits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "config_name": config,
        "features": features(list(schema)),
        "splits": [{"name": n, "num_bytes": s["num_bytes"], "num_examples": s["records"]} for n, s in splits.items()],
        "download_size": sum(s["download_size"] for s in splits.values()),
        "dataset_size": sum(s["num_bytes"] for s in splits.values()),
    }


def licence_metadata(manifest: dict[str, Any]) -> dict[str, str]:
    """The one licence when every source declares the same, else `other` (each listed in the body)."""
    licences = {s.get("license") or "unknown" for s in manifest["sources"].values() if s["status"] == "ok"}
    if len(licences) == 1 and "unknown" not in licences:
        return {"license": licences.pop()}
    return {"license": "other", "license_name": "mixed-per-source"}


def size_category(records: int) -> str:
    return next((label for limit, label in _SIZES if records < limit), "n>100M")


def card_metadata(manifest: dict[str, Any], *, include_quarantine: bool) -> dict[str, Any]:
    splits = {name: split for name, split in manifest["splits"].items() if split["records"]}
    configs = [
        {
            "config_name": "default",
            "data_files": [{"split": name, "path": f"data/{name}-*.parquet"} for name in splits],
        }
    ]
    infos = [_dataset_info("default", RECORD_SCHEMA, splits)]
    for name, table in manifest["tables"].items():
        configs.append({"config_name": name, "data_files": [{"split": "test", "path": f"{name}/test-*.parquet"}]})
        infos.append(_dataset_info(name, TABLE_SCHEMAS[name], {"test": table}))
    if include_quarantine:
        configs.append(
            {"config_name": "quarantine", "data_files": [{"split": "quarantine", "path": "quarantine.parquet"}]}
        )
    records = sum(split["records"] for split in splits.values())
    languages = sorted(set(manifest["languages"]))
    return {
        **licence_metadata(manifest),
        "language": languages,
        "task_categories": ["text-generation"],
        "size_categories": [size_category(records)],
        "tags": sorted({"instruction-tuning", "sft", "stellarspeak", *manifest["categories"]}),
        "pretty_name": manifest["corpus"],
        "configs": configs,
        "dataset_info": infos,
    }


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(YAML metadata, body) of a card; a card without a YAML header has empty metadata."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            loaded = yaml.safe_load(text[4:end]) or {}
            if isinstance(loaded, dict):
                return loaded, text[end + 4 :].lstrip("\n")
    return {}, text


OWNED_KEYS = (
    "license",
    "license_name",
    "language",
    "task_categories",
    "size_categories",
    "tags",
    "pretty_name",
    "configs",
    "dataset_info",
)
"""The metadata a build writes: on a re-publish these come from the new build only (a key it no
longer writes, e.g. `license_name` once every source shares one licence, is dropped)."""


def merge_metadata(existing: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The repository's other keys kept, ours (facts of this build) replacing every owned key."""
    return {**{k: v for k, v in existing.items() if k not in OWNED_KEYS}, **ours}


def render(metadata: dict[str, Any], body: str) -> str:
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{header}---\n\n{body}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def card_body(manifest: dict[str, Any]) -> str:
    recipe = manifest["recipe"]
    lines = [
        f"# {manifest['corpus']}",
        "",
        manifest.get("description") or "Instruction-tuning corpus built by stellar-data.",
        "",
        f"Built by stellar-data from recipe `{recipe['path']}` (sha256 `{recipe['sha256'][:12]}`), "
        f"seed {manifest['seed']}.",
        "",
        "## Splits",
        "",
        _row("config", "split", "records"),
        _row("---", "---", "---"),
        *(_row("default", name, split["records"]) for name, split in manifest["splits"].items()),
        *(_row(name, "test", table["records"]) for name, table in manifest["tables"].items()),
        "",
        "## Sources",
        "",
        _row(
            "source",
            "category",
            "licence",
            "upstream (pinned)",
            *(_LABELS.get(c, c.replace("_", " ")) for c in _COUNTS),
        ),
        _row(*["---"] * (4 + len(_COUNTS))),
    ]
    for name, source in manifest["sources"].items():
        counts = summary_row(source["counts"])
        lines.append(
            _row(
                name,
                source["category"],
                source.get("license") or "unspecified",
                source.get("url") or "-",
                *(counts[c] for c in _COUNTS),
            )
        )
    mix = manifest.get("mix")
    if mix:
        lines += [
            "",
            "## Mixture (train split)",
            "",
            _row("category", "available", "target", "achieved", "target share", "achieved share", "capped"),
            _row(*["---"] * 7),
        ]
        for category, plan in mix["categories"].items():
            lines.append(
                _row(
                    category,
                    plan["available"],
                    plan["target"],
                    plan["achieved"],
                    f"{plan['target_share']:.1%}",
                    f"{plan['achieved_share']:.1%}",
                    "yes" if plan["capped"] else "no",
                )
            )
    quarantine = manifest["quarantine"]
    lines += ["", "## Quarantine", "", f"{quarantine['records']} items rejected, by rule:", ""]
    lines += [f"- `{rule}`: {n}" for rule, n in quarantine["by_rule"].items()]
    lines += [
        "",
        "## Load",
        "",
        "```python",
        "import datasets",
        'corpus = datasets.load_dataset("<this repository or folder>")             # train / validation',
        *(f'{name} = datasets.load_dataset("<this repository or folder>", "{name}")' for name in manifest["tables"]),
        "```",
        "",
    ]
    if recipe.get("text"):
        lines += [
            "## Recipe",
            "",
            "<details><summary>" + recipe["path"] + "</summary>",
            "",
            "```toml",
            recipe["text"].rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def render_card(manifest: dict[str, Any]) -> str:
    """The card written into a built corpus folder (with a `quarantine` config for the local file)."""
    return render(card_metadata(manifest, include_quarantine=True), card_body(manifest))
