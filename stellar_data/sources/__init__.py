"""Source adapters, one file per format. `ADAPTERS` maps the recipe's `adapter` value to a reader."""

from __future__ import annotations

from .alpaca import read_alpaca
from .astro_qa import read_astro_qa
from .base import Adapter, Entry, ItemBatch, RawItem, Rejection, SourceFile
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

__all__ = ["ADAPTERS", "Adapter", "Entry", "ItemBatch", "RawItem", "Rejection", "SourceFile"]
