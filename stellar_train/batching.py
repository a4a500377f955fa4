"""Batches from encoded examples: right-padded, or packed with no attention across examples.

Packed rows concatenate whole examples (best-fit decreasing, so rows are nearly full); a row's length
is the token budget of one row of a forward pass. Each example's first label is masked, so the last
token of one example never predicts the next example's first token. A micro-batch of packed rows
reaches the model in the form its attention implementation masks exactly (`flattens`):

- eager, sdpa, flex_attention (`collate_packed`): the rows side by side, `position_ids` restarting at
  0 for each example and no attention mask, from which transformers builds a block-diagonal causal
  mask per row; a row's padding is a block of its own with labels -100.
- flash-attention and every other varlen kernel (`collate_flat`): the rows flattened into one
  sequence of shape (1, total tokens), no padding, restarting `position_ids` and the examples'
  boundaries as `cu_seq_lens_q/k` + `max_length_q/k` (what `DataCollatorWithFlattening` passes).
  These kernels ignore a position-derived mask, and transformers infers boundaries from position ids
  only for a batch of one row, so side-by-side rows would attend to each other there. Mask-based
  implementations get rows rather than one flat sequence because their dense mask over a flattened
  micro-batch of R rows costs R times the attention work.
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


MASKED_ATTENTION = ("eager", "sdpa", "flex_attention")
"""Implementations that build their mask from position ids (packed rows stay side by side)."""


def flattens(attn_implementation: str) -> bool:
    """Whether packed micro-batches reach this attention implementation flattened (varlen kernels)."""
    return attn_implementation not in MASKED_ATTENTION


def collate_packed(rows: Sequence[Packed], pad_id: int) -> dict[str, torch.Tensor]:
    """Packed rows side by side, padded to the longest; no attention mask (see the module docstring).
    The padding's positions restart at 0: it is a block of its own."""
    width = max(len(r) for r in rows)
    return {
        "input_ids": _padded([r.input_ids for r in rows], width, pad_id),
        "labels": _padded([r.labels for r in rows], width, IGNORE_INDEX),
        "position_ids": _padded([[*r.position_ids, *range(width - len(r))] for r in rows], width, 0),
    }


def collate_flat(rows: Sequence[Packed]) -> dict[str, torch.Tensor | int]:
    """Packed rows flattened into one sequence with the examples' boundaries, for varlen kernels."""
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
