"""Packed micro-batches are exact under every attention implementation: eager, sdpa and a varlen kernel.

A varlen kernel (flash-attention's `flash_attn_varlen_func`, torch's varlen attention) attends within
the sequence boundaries it is given and ignores any mask transformers derives from position ids. The
stand-in below, registered through transformers' public `AttentionInterface`, behaves that way on
CPU: it uses `cu_seq_lens_q` when the batch carries it, and plain causal attention over each whole
row when it does not. Packed loss must equal per-example loss for all three at micro-batch 1 and 4;
packed rows side by side (the form eager and sdpa get) let examples see each other under the
varlen kernel, which is why varlen kernels get the flattened form (`batching.flattens`).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from transformers import AttentionInterface, AutoModelForCausalLM

from stellar_train.batching import Packed, collate_flat, collate_packed, flattens, pack
from stellar_train.data import encode_records
from stellar_train.model import batch_text_tokenizer, load_tokenizer, special_ids, text_tokenizer
from stellar_train.prompt import PromptTemplate
from stellar_train.tokenize import IGNORE_INDEX, Encoded

from .conftest import TRIPLES

VARLEN = "stellar_test_varlen"


def varlen_stand_in(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Causal attention inside the given boundaries (or over each whole row); returns (b, s, heads, dim)."""
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    batch, _, length, _ = query.shape
    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None:
        spans = [(row, 0, length) for row in range(batch)]
    else:
        assert batch == 1, "varlen boundaries index one flattened sequence"
        spans = [(0, int(a), int(b)) for a, b in itertools.pairwise(bounds.tolist())]
    out = torch.zeros_like(query)
    for row, a, b in spans:
        out[row, :, a:b] = torch.nn.functional.scaled_dot_product_attention(
            query[row : row + 1, :, a:b], key[row : row + 1, :, a:b], value[row : row + 1, :, a:b],
            is_causal=True, scale=scaling,
        )[0]  # fmt: skip
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(VARLEN, varlen_stand_in)


@pytest.fixture(scope="module")
def examples(tiny_model: Path) -> list[Encoded]:
    tokenizer = load_tokenizer(str(tiny_model))
    encoded, _ = encode_records(
        TRIPLES * 2, text_tokenizer(tokenizer), special_ids(tokenizer), PromptTemplate.load("alpaca"),
        256, "truncate_prompt", False, batch_text_tokenizer(tokenizer),
    )  # fmt: skip
    assert len(encoded) == 2 * len(TRIPLES)
    return encoded


def model_with(tiny_model: Path, implementation: str):
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation=implementation)
    model.config.use_cache = False
    return model.eval()


def token_loss_sum(model, batch: dict) -> tuple[float, int]:
    """Summed cross-entropy over the batch's label tokens, and their count (the model's own shift)."""
    count = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    with torch.no_grad():
        loss = model(**batch, num_items_in_batch=count).loss
    return float(loss) * count, count


def per_example_loss(model, examples: list[Encoded]) -> float:
    """Each example alone, as its packed form labels it (the first label masked)."""
    total = tokens = 0
    for e in examples:
        labels = [IGNORE_INDEX, *e.labels[1:]]
        part, count = token_loss_sum(
            model, {"input_ids": torch.tensor([e.input_ids]), "labels": torch.tensor([labels])}
        )
        total, tokens = total + part, tokens + count
    return total / tokens


def packed_loss(model, rows: list[Packed], micro: int, flat: bool) -> float:
    total = tokens = 0
    for start in range(0, len(rows), micro):
        group = rows[start : start + micro]
        part, count = token_loss_sum(model, collate_flat(group) if flat else collate_packed(group, 0))
        total, tokens = total + part, tokens + count
    return total / tokens


@pytest.mark.parametrize("implementation", ["eager", "sdpa", VARLEN])
@pytest.mark.parametrize("micro", [1, 4])
def test_packed_loss_equals_per_example_loss(tiny_model: Path, examples, implementation: str, micro: int) -> None:
    """In the form the trainer's collator gives this implementation (and flattened for all)."""
    rows = pack(examples, 2 * max(len(e) for e in examples))
    assert len(rows) >= 4 and any(r.position_ids.count(0) > 1 for r in rows)  # rows really hold several examples
    model = model_with(tiny_model, implementation)
    expected = per_example_loss(model_with(tiny_model, "eager"), examples)
    assert flattens(implementation) == (implementation == VARLEN)
    assert packed_loss(model, rows, micro, flattens(implementation)) == pytest.approx(expected, abs=1e-5)
    assert packed_loss(model, rows, micro, flat=True) == pytest.approx(expected, abs=1e-5)


def test_side_by_side_packed_rows_leak_across_examples_under_a_varlen_kernel(tiny_model: Path, examples) -> None:
    rows = pack(examples, 2 * max(len(e) for e in examples))[:4]
    assert len(rows) == 4
    model = model_with(tiny_model, VARLEN)

    def logits(batch: dict, flat: bool) -> torch.Tensor:
        """Every real token's logits, in row order."""
        with torch.no_grad():
            out = model(**batch).logits
        return out[0] if flat else torch.cat([out[i, : len(r)] for i, r in enumerate(rows)])

    exact = torch.cat([logits(collate_flat([r]), True) for r in rows])
    torch.testing.assert_close(logits(collate_flat(rows), True), exact, atol=1e-5, rtol=0)
    assert (logits(collate_packed(rows, 0), False) - exact).abs().max() > 1e-3
    # sdpa masks the same side-by-side batch correctly (from position ids): only varlen kernels need the flat form.
    sdpa = model_with(tiny_model, "sdpa")
    flat_sum, flat_count = token_loss_sum(sdpa, collate_flat(rows))
    side_sum, side_count = token_loss_sum(sdpa, collate_packed(rows, 0))
    assert side_count == flat_count and side_sum == pytest.approx(flat_sum, abs=1e-4)
