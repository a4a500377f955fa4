"""Training data: a built corpus folder (its Parquet shards) or any `datasets.load_dataset` source
with instruction / input / output columns, encoded into examples."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from torch.utils.data import Dataset

from .prompt import PromptTemplate
from .tokenize import Encoded, EncodeStats, SpecialIds, Tokenize, encode

COLUMNS = ("instruction", "input", "output")


class DataError(ValueError):
    """Training data that cannot be read or lacks the triple's columns."""


def is_corpus(data: str) -> bool:
    return (Path(data) / "manifest.json").is_file()


def corpus_manifest_sha256(data: str) -> str | None:
    """The corpus manifest's hash, recorded with the run (None for other datasets)."""
    manifest = Path(data) / "manifest.json"
    return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None


def load_records(data: str, split: str) -> list[dict[str, str]] | None:
    """The split's triples, or None when the source has no such split."""
    if is_corpus(data):
        import stellar_data

        corpus = stellar_data.load(data)
        if split not in corpus.splits:
            return None
        return corpus.frame_of(split).select(*COLUMNS).collect().to_dicts()
    import datasets

    try:
        loaded = datasets.load_dataset(data)
    except Exception as exc:  # datasets raises many types for "cannot open"
        raise DataError(f"data {data}: cannot open with datasets.load_dataset: {exc}") from None
    if split not in loaded:
        return None
    table = loaded[split]
    missing = [c for c in ("instruction", "output") if c not in table.column_names]
    if missing:
        raise DataError(f"data {data}: split {split} lacks column(s) {', '.join(missing)}")
    inputs = table["input"] if "input" in table.column_names else [""] * len(table)
    return [
        {"instruction": i, "input": x or "", "output": o}
        for i, x, o in zip(table["instruction"], inputs, table["output"], strict=True)
    ]


def encode_records(
    records: Sequence[dict[str, str]],
    tokenize: Tokenize,
    ids: SpecialIds,
    template: PromptTemplate,
    cutoff_len: int,
    policy: str,
    train_on_inputs: bool,
    tokenize_batch: Callable[[list[str]], list[list[int]]] | None = None,
    batch_size: int = 1024,
    min_instruction_share: float = 0.5,
) -> tuple[list[Encoded], EncodeStats]:
    """Encode every record; with `tokenize_batch` the texts are tokenized a batch at a time (the
    fast path: one call per batch instead of two per example). `min_instruction_share`: see
    `tokenize` (the least share of an instruction `truncate_prompt` keeps)."""
    stats = EncodeStats()
    examples = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        known: list[tuple[list[int], list[int]] | None] = [None] * len(chunk)
        if tokenize_batch is not None:
            prompts = [template.prompt(r["instruction"], r["input"]) for r in chunk]
            prompt_ids = tokenize_batch(prompts)
            full_ids = tokenize_batch([p + r["output"] for p, r in zip(prompts, chunk, strict=True)])
            known = list(zip(prompt_ids, full_ids, strict=True))
        for record, pretokenized in zip(chunk, known, strict=True):
            example = encode(
                tokenize, ids, template, record["instruction"], record["input"], record["output"],
                cutoff_len=cutoff_len, policy=policy, min_instruction_share=min_instruction_share,
                train_on_inputs=train_on_inputs, stats=stats, pretokenized=pretokenized,
            )  # fmt: skip
            if example is not None:
                examples.append(example)
    return examples, stats


class ExampleDataset(Dataset):
    """Encoded examples (or packed rows) as the dicts the Trainer hands to the collator."""

    def __init__(self, rows: Sequence[object]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, object]:
        row = self.rows[index]
        return {"input_ids": row.input_ids, "row": row}
