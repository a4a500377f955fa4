"""The naive peer: the core chain written the way ad-hoc corpus scripts are.

    .venv/bin/python bench/naive_build.py DATA_DIR --out OUT [--seed S]

Reads DATA_DIR/core/part-*.jsonl one line at a time with `json`, and per record, in Python: strip
and OpenCC t2s each field, validate against schemas/record.schema.json with a prebuilt jsonschema
validator, drop exact duplicates with a set of (instruction, input, output). Then a seeded random
train / validation split, `json.dump` of train.json and validation.json, and train.parquet through
pyarrow. Honest and unoptimized: no batching, no vectorization, one process.

Writes OUT/summary.json with the counts, for bench/run.py to reconcile with ours.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import jsonschema
import opencc
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
TEXT_FIELDS = ("instruction", "input", "output")


def clean(value, converter):
    """Strip and convert to simplified Chinese; anything that is not a string is left for validation."""
    if not isinstance(value, str):
        return value
    return converter.convert(value.strip())


def make_record(raw, file_name, row, converter):
    record_id = f"core:{file_name}:{row}"
    fields = {name: clean(raw.get(name, "" if name == "input" else None), converter) for name in TEXT_FIELDS}
    text = "".join(v for v in fields.values() if isinstance(v, str))
    return {
        "id": record_id,
        **fields,
        "category": "general",
        "source": "core",
        "lang": "zh" if HAN.search(text) else "en",
        "group": record_id,
        "source_file": f"core/{file_name}",
        "source_row": row,
        "template_id": None,
        "original_id": None,
        "copy_index": 0,
    }


def build(data_dir, out, seed, validation_fraction=0.02):
    schema = json.loads((ROOT / "schemas" / "record.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    converter = opencc.OpenCC("t2s.json")
    counts = {"read": 0, "malformed_json": 0, "invalid": 0, "duplicates": 0, "kept": 0}
    seen = set()
    kept = []
    for path in sorted((data_dir / "core").glob("part-*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for row, line in enumerate(handle):
                if not line.strip():
                    continue
                counts["read"] += 1
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError:
                    counts["malformed_json"] += 1
                    continue
                if not isinstance(raw, dict):
                    counts["invalid"] += 1
                    continue
                record = make_record(raw, path.name, row, converter)
                if not validator.is_valid(record):
                    counts["invalid"] += 1
                    continue
                key = (record["instruction"], record["input"], record["output"])
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(key)
                kept.append(record)
    counts["kept"] = len(kept)

    rng = random.Random(seed)
    train, validation = [], []
    for record in kept:
        (validation if rng.random() < validation_fraction else train).append(record)
    counts["train"], counts["validation"] = len(train), len(validation)

    out.mkdir(parents=True, exist_ok=True)
    for name, records in (("train", train), ("validation", validation)):
        with (out / f"{name}.json").open("w", encoding="utf-8") as handle:
            json.dump([{k: r[k] for k in TEXT_FIELDS} for r in records], handle, ensure_ascii=False, indent=2)
    pq.write_table(pa.Table.from_pylist(train), out / "train.parquet")
    (out / "summary.json").write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description="Naive core-chain build (the peer for make bench).")
    parser.add_argument("data_dir", type=Path, help="a folder written by bench/generate.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(build(args.data_dir, args.out, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
