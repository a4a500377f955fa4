"""MinHash signatures of folded texts, computed per item in the ingest workers, and their LSH bands.

A text's folded tokens (fold.py) as n-gram shingles (5 Han characters or 5 words), hashed once each;
one-permutation MinHash: the high bits of a shingle's hash pick one of K bins, the bin keeps the
smallest low 32 bits; empty bins borrow from the next filled bin (densification). The share of equal
bins between two signatures estimates the Jaccard similarity of their shingle sets. All numpy over
the concatenated shingles of a batch: no Python loop per item.

LSH: the K bins cut into `bands` bands of `rows` bins; items whose signatures agree on a whole band
become near-duplicate candidates (the clustering is the near-dedup step's, steps/neardup.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .fold import Grams

if TYPE_CHECKING:  # steps/neardup.py imports this module: at run time only the config's fields are read
    from ..steps.neardup import NearDedupConfig

SIGNATURE = "_minhash"
"""Per record: its MinHash signature (K uint32 bins)."""
_EMPTY = np.uint32(0xFFFFFFFF)


def signatures(grams_of: Grams, config: NearDedupConfig) -> np.ndarray:
    """(texts, K) uint32 signatures of folded texts (their `Grams`); an empty text's row is all
    0xFFFFFFFF (never a duplicate)."""
    k = config.num_perm
    texts = grams_of.texts
    grams, owner = grams_of.of(config.ngram)
    flat = np.full(texts * k, _EMPTY, dtype=np.uint32)
    bins = (grams >> np.uint64(64 - int(np.log2(k)))).astype(np.int64)
    np.minimum.at(flat, owner * k + bins, (grams & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    return _densify(flat.reshape(texts, k))


def empty_signatures(sig: np.ndarray) -> np.ndarray:
    """Per row: True for the signature of a text with no shingle (every bin empty)."""
    return (sig == _EMPTY).all(axis=1)


def _densify(sig: np.ndarray) -> np.ndarray:
    """Fill each empty bin from the next filled bin to its right (cyclically), mixed with the distance."""
    n, k = sig.shape
    empty = sig == _EMPTY
    if not empty.any():
        return sig
    position = np.arange(k)
    index = np.where(empty, 2 * k, position)
    doubled = np.concatenate([index, np.where(empty, 2 * k, position + k)], axis=1)
    following = np.minimum.accumulate(doubled[:, ::-1], axis=1)[:, ::-1][:, :k]
    filled = following < 2 * k  # rows with at least one filled bin
    donor = np.where(filled, following % k, 0)
    distance = (following - position).astype(np.uint32)
    borrowed = sig[np.arange(n)[:, None], donor] + distance * np.uint32(0x9E3779B1)
    return np.where(empty & filled, borrowed, sig).astype(np.uint32)


def band_keys(sig: np.ndarray, config: NearDedupConfig) -> np.ndarray:
    """(n, bands) uint64 keys: each band's rows combined."""
    rows = config.rows
    shaped = sig.reshape(len(sig), config.bands, rows).astype(np.uint64)
    keys = np.zeros((len(sig), config.bands), dtype=np.uint64)
    for r in range(rows):
        keys = keys * np.uint64(0x100000001B3) + shaped[:, :, r] + np.uint64(r + 1)
    return keys
