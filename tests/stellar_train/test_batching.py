"""Batching: best-fit-decreasing packing of whole examples with per-example position ids, right-padded
and packed collation, and the padding share. The last test checks on the tiny LLaMA that a packed row computes the same
logits as its examples run one by one (no attention across examples)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from stellar_train.batching import Packed, collate_flat, collate_packed, collate_padded, flattens, non_pad_share, pack
from stellar_train.tokenize import IGNORE_INDEX, Encoded

M = IGNORE_INDEX
PAD = 0


def example(n: int, start: int) -> Encoded:
    """n tokens start, start+1, ...; labels are the ids + 1000 (distinguishable, and the first label is
    a real id, which pack must mask)."""
    ids = list(range(start, start + n))
    return Encoded(ids, [i + 1000 for i in ids])


A, B, C, D = example(3, 10), example(4, 20), example(2, 30), example(5, 40)


def segments(row: Packed) -> list[tuple[list[int], list[int], list[int]]]:
    """A packed row split where position ids restart: (ids, labels, positions) per example."""
    starts = [i for i, p in enumerate(row.position_ids) if p == 0] + [len(row)]
    assert starts[0] == 0, "a packed row must start a new example at position 0"
    return [(row.input_ids[a:b], row.labels[a:b], row.position_ids[a:b]) for a, b in itertools.pairwise(starts)]


def assert_valid_packing(examples: list[Encoded], rows: list[Packed], max_len: int) -> None:
    """Every example exactly once, whole, inside one row; positions 0..n-1; first label masked."""
    assert all(0 < len(r) <= max_len for r in rows)
    assert all(len(r.input_ids) == len(r.labels) == len(r.position_ids) for r in rows)
    found = sorted((ids, labels, positions) for r in rows for ids, labels, positions in segments(r))
    expected = sorted((e.input_ids, [M, *e.labels[1:]], list(range(len(e)))) for e in examples)
    assert found == expected


def test_pack_best_fit_decreasing_exact_rows():
    # Longest first: D(5) opens row 0 (3 left), B(4) opens row 1 (4 left), A(3) fills row 0 exactly,
    # C(2) goes to row 1.
    rows = pack([A, B, C, D], max_len=8)
    assert rows == [
        Packed(
            input_ids=[40, 41, 42, 43, 44, 10, 11, 12],
            labels=[M, 1041, 1042, 1043, 1044, M, 1011, 1012],
            position_ids=[0, 1, 2, 3, 4, 0, 1, 2],
        ),
        Packed(
            input_ids=[20, 21, 22, 23, 30, 31],
            labels=[M, 1021, 1022, 1023, M, 1031],
            position_ids=[0, 1, 2, 3, 0, 1],
        ),
    ]
    assert_valid_packing([A, B, C, D], rows, 8)


def test_pack_fills_rows_better_than_in_order_greedy():
    # In order, greedy packing would need 3 rows ([3] [6, 2] [5]); best fit needs 2 full rows.
    examples = [example(3, 10), example(6, 20), example(2, 30), example(5, 40)]
    rows = pack(examples, max_len=8)
    assert [len(r) for r in rows] == [8, 8]
    assert_valid_packing(examples, rows, 8)


def test_pack_keeps_the_order_of_equal_lengths():
    x, y, z = example(3, 10), example(3, 20), example(3, 30)
    rows = pack([x, y, z], max_len=6)
    assert [r.input_ids for r in rows] == [[10, 11, 12, 20, 21, 22], [30, 31, 32]]


def test_pack_example_of_exactly_max_len_is_a_row_alone():
    rows = pack([D, A], max_len=5)
    assert [r.input_ids for r in rows] == [[40, 41, 42, 43, 44], [10, 11, 12]]
    assert rows[0].position_ids == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("max_len", [8, 9, 16])
@pytest.mark.parametrize("seed", range(5))
def test_pack_invariants_on_random_lengths(max_len, seed):
    rng = random.Random(seed)
    examples = [example(rng.randint(1, 8), 100 * i) for i in range(40)]
    rows = pack(examples, max_len=max_len)
    assert_valid_packing(examples, rows, max_len)
    # A row is opened only when its first example fits no earlier row, so no two rows could be merged.
    lengths = [len(r) for r in rows]
    assert all(a + b > max_len for i, a in enumerate(lengths) for b in lengths[i + 1 :])


def test_pack_masks_the_first_label_of_every_example_even_if_given():
    rows = pack([Encoded([5, 6], [5, 6]), Encoded([7, 8], [7, 8])], max_len=4)
    assert rows == [Packed([5, 6, 7, 8], [M, 6, M, 8], [0, 1, 0, 1])]


def test_pack_rejects_an_example_longer_than_max_len():
    with pytest.raises(ValueError, match="5 tokens"):
        pack([A, D], max_len=4)


def test_pack_of_nothing_is_no_rows():
    assert pack([], max_len=8) == []


def test_collate_padded():
    batch = collate_padded([Encoded([1, 5, 6, 2], [M, M, 6, 2]), Encoded([1, 7, 2], [M, 7, 2])], pad_id=PAD)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    for tensor in batch.values():
        assert tensor.shape == (2, 4) and tensor.dtype == torch.long
    assert batch["input_ids"].tolist() == [[1, 5, 6, 2], [1, 7, 2, PAD]]
    assert batch["labels"].tolist() == [[M, M, 6, 2], [M, 7, 2, M]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


def test_collate_padded_keeps_the_eos_label_with_a_distinct_pad():
    batch = collate_padded([Encoded([1, 9, 2], [M, 9, 2]), Encoded([1, 2], [M, 2])], pad_id=PAD)
    assert batch["labels"][:, :2].tolist() == [[M, 9], [M, 2]]
    assert (batch["labels"] == 2).sum().item() == 2  # both EOS labels survive padding


def test_collate_packed():
    rows = [Packed([10, 11, 12, 20], [M, 1011, M, 1020], [0, 1, 0, 1]), Packed([30, 31, 32], [M, 31, 32], [0, 1, 2])]
    batch = collate_packed(rows, pad_id=PAD)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention mask
    for tensor in batch.values():
        assert tensor.shape == (2, 4) and tensor.dtype == torch.long
    assert batch["input_ids"].tolist() == [[10, 11, 12, 20], [30, 31, 32, PAD]]
    assert batch["labels"].tolist() == [[M, 1011, M, 1020], [M, 31, 32, M]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1], [0, 1, 2, 0]]


def test_collate_packed_padding_is_a_block_of_its_own():
    rows = pack([A, B, C], max_len=7)  # B + A fill one row of 7; C is a row of 2
    batch = collate_packed(rows, pad_id=PAD)
    assert batch["input_ids"].tolist() == [[20, 21, 22, 23, 10, 11, 12], [30, 31, PAD, PAD, PAD, PAD, PAD]]
    assert batch["labels"].tolist() == [[M, 1021, 1022, 1023, M, 1011, 1012], [M, 1031, M, M, M, M, M]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2], [0, 1, 0, 1, 2, 3, 4]]


def test_only_varlen_kernels_get_flattened_batches():
    assert not any(flattens(name) for name in ("eager", "sdpa", "flex_attention"))
    assert all(flattens(name) for name in ("flash_attention_2", "flash_attention_3", "my_registered_varlen"))


def test_collate_flat_flattens_the_micro_batch_into_one_sequence():
    rows = [Packed([10, 11, 12, 20], [M, 1011, M, 1020], [0, 1, 0, 1]), Packed([30, 31, 32], [M, 31, 32], [0, 1, 2])]
    batch = collate_flat(rows)
    assert "attention_mask" not in batch  # eager / sdpa derive the block-diagonal mask from position_ids
    for name in ("input_ids", "labels", "position_ids"):
        assert batch[name].shape == (1, 7) and batch[name].dtype == torch.long
    assert batch["input_ids"].tolist() == [[10, 11, 12, 20, 30, 31, 32]]  # no padding at all
    assert batch["labels"].tolist() == [[M, 1011, M, 1020, M, 31, 32]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 0, 1, 2]]
    # The boundaries varlen kernels read: three examples of 2, 2 and 3 tokens.
    assert batch["cu_seq_lens_q"].tolist() == batch["cu_seq_lens_k"].tolist() == [0, 2, 4, 7]
    assert batch["cu_seq_lens_q"].dtype == torch.int32
    assert batch["max_length_q"] == batch["max_length_k"] == 3


def test_collate_flat_of_best_fit_rows_keeps_every_example_whole():
    rows = pack([A, B, C, D], max_len=7)
    batch = collate_flat(rows)
    bounds = batch["cu_seq_lens_q"].tolist()
    ids = batch["input_ids"][0].tolist()
    found = sorted(ids[a:b] for a, b in itertools.pairwise(bounds))
    assert found == sorted(e.input_ids for e in (A, B, C, D))
    assert bounds[-1] == sum(len(r) for r in rows) == len(ids)


@pytest.mark.parametrize(
    ("batches", "share"),
    [
        ([[3, 5], [4, 4]], 16 / 18),
        ([[4, 4]], 1.0),
        ([[1, 9]], 10 / 18),
        ([[2], [7]], 1.0),
        ([[1, 2, 3]], 6 / 9),
        ([], 0.0),
    ],
)
def test_non_pad_share(batches, share):
    assert non_pad_share(batches) == pytest.approx(share, abs=1e-12)


def test_packed_row_computes_the_same_logits_as_separate_examples(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    first = Encoded([1, 300, 301, 302, 2], [M, M, 301, 302, 2])
    second = Encoded([1, 310, 311, 2], [M, 310, 311, 2])
    rows = pack([first, second], max_len=12)
    assert len(rows) == 1
    batch = collate_packed([*rows, Packed([1, 320], [M, 320], [0, 1])], pad_id=PAD)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone = [model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0] for e in (first, second)]
        plain = model(input_ids=batch["input_ids"][:1], use_cache=False).logits[0]
    torch.testing.assert_close(packed[0, :5], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[0, 5:9], alone[1], atol=1e-5, rtol=1e-5)
    # Control: without per-example positions the second example attends to the first.
    assert (plain[5:9] - alone[1]).abs().max() > 1e-3
