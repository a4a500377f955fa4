"""Source adapters, one file per format. `ADAPTERS` maps the recipe's `adapter` value to what the
toolkit knows about that adapter (registry.py)."""

from __future__ import annotations

from .base import Adapter, Entry, ItemBatch, LineSpan, RawItem, Rejection, SourceFile
from .registry import ADAPTERS, STRATA_COLUMNS, AdapterInfo

__all__ = [
    "ADAPTERS",
    "STRATA_COLUMNS",
    "Adapter",
    "AdapterInfo",
    "Entry",
    "ItemBatch",
    "LineSpan",
    "RawItem",
    "Rejection",
    "SourceFile",
]
