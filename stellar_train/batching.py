"""Batches from encoded examples: right-padded, or packed with no attention across examples.

Packed rows concatenate whole examples (best-fit decreasing, so rows are nearly
full); `position_ids` restart at 0 for each example and no
attention mask is passed, from which transformers builds a block-diagonal causal mask (sdpa and eager
attention; flash-attention reads the same position ids). Each example's first label is masked, so the
last token of one example never predicts the next example's first token. Padding at the end of a
packed row is its own block with labels -100.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .tokenize import IGNORE_INDEX, Encoded


@dataclass(frozen=True)
class Packed:
    """One packed row: several whole examples."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def pack(examples: Sequence[Encoded], max_len: int) -> list[Packed]:
    """Best-fit-decreasing packing: examples longest first, each into the open row whose free space
    fits it most tightly (a new row when none does). Rows come out in creation order; examples keep
    their relative order within equal lengths. An example longer than max_len raises (the cutoff is
    at most max_len, so it does not happen)."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
    rows: list[list[int]] = []  # example indices per row
    by_room: dict[int, list[int]] = {}  # free space -> rows with exactly that much
    rooms: list[int] = []  # the free-space values present, sorted
    for index in order:
        size = len(examples[index])
        if size > max_len:
            raise ValueError(f"example of {size} tokens does not fit a packed row of {max_len}")
        at = bisect.bisect_left(rooms, size)
        if at < len(rooms):
            room = rooms[at]
            row = by_room[room].pop()
            if not by_room[room]:
                del by_room[room]
                rooms.pop(at)
        else:
            room, row = max_len, len(rows)
            rows.append([])
        rows[row].append(index)
        left = room - size
        if left > 0:
            if left not in by_room:
                by_room[left] = []
                bisect.insort(rooms, left)
            by_room[left].append(row)
    return [_join([examples[i] for i in row]) for row in rows]


def _join(examples: Sequence[Encoded]) -> Packed:
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in examples:
        ids += example.input_ids
        labels += [IGNORE_INDEX, *example.labels[1:]]
        positions += range(len(example))
    return Packed(ids, labels, positions)


def collate_padded(examples: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with an attention mask; padded labels are -100."""
    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def collate_packed(rows: Sequence[Packed], pad_id: int) -> dict[str, torch.Tensor]:
    """Packed rows padded to the longest; no attention mask (see the module docstring)."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        n = len(row)
        input_ids[index, :n] = torch.tensor(row.input_ids)
        labels[index, :n] = torch.tensor(row.labels)
        positions[index, :n] = torch.tensor(row.position_ids)
        positions[index, n:] = torch.arange(width - n)  # the padding is a block of its own
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions}


def non_pad_share(batches: Sequence[Sequence[int]]) -> float:
    """Share of real tokens when each batch (given as its rows' lengths) is padded to its longest row."""
    real = sum(sum(lengths) for lengths in batches)
    total = sum(len(lengths) * max(lengths) for lengths in batches if lengths)
    return real / total if total else 0.0
