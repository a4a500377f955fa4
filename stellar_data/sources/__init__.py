"""Source adapters, one file per format. `ADAPTERS` maps the recipe's `adapter` value to what the
toolkit knows about that adapter (registry.py)."""

from __future__ import annotations

from .base import Adapter, Entry, ItemBatch, LineSpan, RawItem, Rejection, SourceFile
from .registry import ADAPTERS, AdapterInfo

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterInfo",
    "Entry",
    "ItemBatch",
    "LineSpan",
    "RawItem",
    "Rejection",
    "SourceFile",
]
