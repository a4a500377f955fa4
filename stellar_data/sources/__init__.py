"""Source adapters, one file per format. `ADAPTERS` maps the recipe's `adapter` value to a reader."""

from __future__ import annotations

from .alpaca import read_alpaca
from .astro_qa import read_astro_qa
from .base import Adapter, Entry, ItemBatch, LineSpan, RawItem, Rejection, SourceFile
from .generic import read_generic
from .gsm8k import read_gsm8k
from .identity import read_identity

ADAPTERS: dict[str, Adapter] = {
    "alpaca": read_alpaca,
    "gsm8k": read_gsm8k,
    "identity": read_identity,
    "generic": read_generic,
    "astro_qa": read_astro_qa,
}

LINE_SPLITTABLE = frozenset({"alpaca", "gsm8k"})
"""Adapters that read each JSON Lines line on its own: a large file can be read as line spans,
several tasks in parallel (SourceFile.span)."""

__all__ = [
    "ADAPTERS",
    "LINE_SPLITTABLE",
    "Adapter",
    "Entry",
    "ItemBatch",
    "LineSpan",
    "RawItem",
    "Rejection",
    "SourceFile",
]
