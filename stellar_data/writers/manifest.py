"""manifest.json: what was built from what, with counts that reconcile and checksums.

Volatile fields (they may differ between two builds of the same inputs): everything under
`volatile` (build time, durations, host). Everything else is a function of recipe, inputs, seed
and package versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from ..hashing import file_sha256
from ..resources import load_schema

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def file_entries(root: Path, paths: list[Path], records: dict[Path, int]) -> dict[str, dict[str, Any]]:
    return {
        p.relative_to(root).as_posix(): {
            "sha256": file_sha256(p),
            "bytes": p.stat().st_size,
            **({"records": records[p]} if p in records else {}),
        }
        for p in sorted(paths)
    }


def reconcile_errors(manifest: dict[str, Any]) -> list[str]:
    """Every way the per-source chain fails to add up (empty when the counts reconcile)."""
    problems = []
    for name, source in manifest["sources"].items():
        c = source["counts"]
        rejected = sum(c["quarantined"].values()) + sum(c["excluded"].values())
        if c["read"] != c["valid"] + rejected:
            problems.append(f"{name}: read {c['read']} != valid {c['valid']} + rejected {rejected}")
        if c["valid"] != c["kept"] + c["duplicates"] + c["held_out"]:
            parts = f"kept {c['kept']} + duplicates {c['duplicates']} + held out {c['held_out']}"
            problems.append(f"{name}: valid {c['valid']} != {parts}")
        if c["kept"] != c["train"] + c["validation"]:
            problems.append(f"{name}: kept {c['kept']} != train {c['train']} + validation {c['validation']}")
    for split, info in manifest["splits"].items():
        expected = sum(s["counts"]["records"][split] for s in manifest["sources"].values())
        if info["records"] != expected:
            problems.append(f"{split}: {info['records']} records written, sources account for {expected}")
    return problems


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    jsonschema.validate(manifest, load_schema("manifest.schema.json"))
    problems = reconcile_errors(manifest)
    if problems:  # a bug in stellar-data, not in the data: never write a manifest that lies
        raise AssertionError("manifest counts do not reconcile: " + "; ".join(problems))
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
