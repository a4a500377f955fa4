"""Which characters an OpenCC conversion may change, read from the installed OpenCC dictionaries.

OpenCC replaces each longest dictionary match by its value and leaves every other character as it
is. So a text holding no character from `changeable_characters` converts to itself: every key it
could match maps to itself at each position (a character where key and value differ is in the
set), and a key whose value has another length has all its characters in the set. That holds for
each dictionary of a chain in turn. Normalize sends OpenCC only the texts holding one of them:
most simplified Chinese text holds none, and OpenCC (which holds the GIL) is the costliest step.

A character in no dictionary key is never part of a match either, so OpenCC converts a text piece
by piece: each maximal run of key characters on its own, every other character to itself. Only the
runs holding a changeable character can change (`DictionaryCharacters.keyed` gives the runs).

The dictionaries ship compiled (`.ocd2`); the `opencc_dict` tool bundled with the same wheel dumps
them as text. When that fails, None says "unknown" and every CJK text is converted, as before.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import opencc

OPENCC_HOME = Path(opencc.__file__).parent / "clib"
"""The wheel's OpenCC build: share/opencc holds the configs and dictionaries, bin the tools."""


@dataclass(frozen=True)
class DictionaryCharacters:
    changeable: frozenset[str]
    """Every character a conversion may change."""
    keyed: frozenset[str]
    """Every character of every dictionary key: no match spans a character outside it."""


@cache
def dictionary_characters(config_name: str, opencc_home: Path = OPENCC_HOME) -> DictionaryCharacters | None:
    """The characters of a `config_name` (t2s, tw2s, hk2s, ...) conversion's dictionaries, all of
    them in its chain; None if the dictionaries cannot be read."""
    share = opencc_home / "share" / "opencc"
    try:
        config = json.loads((share / f"{config_name}.json").read_text(encoding="utf-8"))
        changeable: set[str] = set()
        keyed: set[str] = set()
        with tempfile.TemporaryDirectory() as scratch:
            for name in sorted(set(_dictionary_files(config))):
                entries = list(_dictionary_entries(opencc_home, share / name, Path(scratch)))
                changeable |= _changed_by(entries)
                keyed.update(*(key for key, _ in entries))
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return DictionaryCharacters(frozenset(changeable), frozenset(keyed))


def changeable_characters(config_name: str, opencc_home: Path = OPENCC_HOME) -> frozenset[str] | None:
    """Every character a `config_name` conversion may change; None if the dictionaries cannot be read."""
    characters = dictionary_characters(config_name, opencc_home)
    return None if characters is None else characters.changeable


def _dictionary_files(node: Any) -> Iterator[str]:
    """Every dictionary file a config names, in its normalization and conversion chain, nested groups too."""
    if isinstance(node, dict):
        if isinstance(node.get("file"), str):
            yield node["file"]
        for value in node.values():
            yield from _dictionary_files(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dictionary_files(value)


def _dictionary_entries(opencc_home: Path, path: Path, scratch: Path) -> Iterator[tuple[str, list[str]]]:
    """(key, candidate values) of one dictionary; a `.ocd2` is dumped to text first."""
    if path.suffix == ".ocd2":
        text_path = scratch / f"{path.stem}.txt"
        tool = opencc_home / "bin" / "opencc_dict"
        command = [str(tool), "-i", str(path), "-o", str(text_path), "-f", "ocd2", "-t", "text"]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        path = text_path
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        key, _, values = line.partition("\t")
        if not values:
            raise ValueError(f"{path.name}: unexpected line {line!r}")
        yield key, values.split(" ")


def _changed_by(entries: list[tuple[str, list[str]]]) -> set[str]:
    changed: set[str] = set()
    for key, values in entries:
        for value in values:
            if len(value) != len(key):
                changed.update(key)
            else:
                changed.update(k for k, v in zip(key, value, strict=True) if k != v)
    return changed
