"""How a record is folded for similarity: one rule for the ingest workers (near-dedup signatures,
eval-gram lookups) and the global steps (decontamination folds a few records again). Were the two
to fold differently, a record's n-grams would not be the ones its eval-gram hits were found with.

The text compared is instruction, input and output together. Traditional characters are
converted to simplified (OpenCC t2s) only for sources whose `opencc` is "none": text a source
already converted with OpenCC is not converted again.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from .fold import TokenHashes, fold_hashes, prefold

FOLD_SEED = 0
"""Token-hash seed of similarity: records and eval questions must hash alike."""


def record_text(records: pl.DataFrame) -> pl.Series:
    """What similarity compares: instruction, input and output together."""
    return records.select(pl.concat_str("instruction", "input", "output", separator=" ")).to_series()


def fold_records(records: pl.DataFrame, opencc: Mapping[str, str], protected_terms: tuple[str, ...]) -> TokenHashes:
    """Each record folded into token hashes (fold.py). `opencc`: each source's `opencc` setting, by
    source name; the records' `source` column says whose each record is."""
    texts = record_text(records)
    unconverted = [name for name, setting in opencc.items() if setting == "none"]
    rows = records["source"].is_in(unconverted).arg_true()
    if len(rows):
        converted = prefold(texts.gather(rows), convert_traditional=True, protected_terms=protected_terms)
        texts = texts.scatter(rows, converted)
    return fold_hashes(texts, convert_traditional=False, protected_terms=protected_terms, seed=FOLD_SEED)
