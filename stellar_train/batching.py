"""Batches from encoded examples: right-padded, or packed with no attention across examples.

Packed rows concatenate whole examples (best-fit decreasing, so rows are nearly full); a row's length
is the token budget of one forward pass per row. A micro-batch of packed rows reaches the model
flattened into one sequence of shape (1, total tokens), with no padding at all, `position_ids` that
restart at 0 for each example, and the examples' boundaries as `cu_seq_lens_q/k` + `max_length_q/k`
(the varlen arguments `DataCollatorWithFlattening` passes). Every attention implementation masks that
exactly: eager and sdpa build a block-diagonal causal mask from the restarting position ids (no
attention mask is passed), and flash-attention / other varlen kernels read the boundaries (they
ignore a position-derived mask, and transformers only infers boundaries from position ids for a
batch of one row). Each example's first label is masked, so the last token of one example never
predicts the next example's first token.
"""

from __future__ import annotations

import bisect
import itertools
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


def _padded(sequences: Sequence[Sequence[int]], width: int, fill: int) -> torch.Tensor:
    """Rows of ints right-padded with `fill` to `width`, as a long tensor."""
    out = torch.full((len(sequences), width), fill, dtype=torch.long)
    for row, values in enumerate(sequences):
        out[row, : len(values)] = torch.tensor(values, dtype=torch.long)
    return out


def collate_padded(examples: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with an attention mask; padded labels are -100."""
    width = max(len(e) for e in examples)
    return {
        "input_ids": _padded([e.input_ids for e in examples], width, pad_id),
        "attention_mask": _padded([[1] * len(e) for e in examples], width, 0),
        "labels": _padded([e.labels for e in examples], width, IGNORE_INDEX),
    }


def collate_packed(rows: Sequence[Packed]) -> dict[str, torch.Tensor | int]:
    """Packed rows flattened into one sequence with the examples' boundaries (see the module docstring)."""
    ids = [token for row in rows for token in row.input_ids]
    labels = [label for row in rows for label in row.labels]
    positions = [position for row in rows for position in row.position_ids]
    starts = [at for at, position in enumerate(positions) if position == 0]
    lengths = [b - a for a, b in zip(starts, [*starts[1:], len(positions)], strict=True)]
    boundaries = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)
    longest = max(lengths)
    return {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "cu_seq_lens_q": boundaries,
        "cu_seq_lens_k": boundaries,
        "max_length_q": longest,
        "max_length_k": longest,
    }


def non_pad_share(batches: Sequence[Sequence[int]]) -> float:
    """Share of real tokens when each batch (given as its rows' lengths) is padded to its longest row."""
    real = sum(sum(lengths) for lengths in batches)
    total = sum(len(lengths) * max(lengths) for lengths in batches if lengths)
    return real / total if total else 0.0
