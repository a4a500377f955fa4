"""Models, data and steps for bench/gpu_check.py: random-init LLaMA shapes with LoRA, synthetic SFT
examples, the padded and packed batches the trainer builds, and the loss/gradient helpers.

Imports only torch, transformers, peft and stellar_train's batching/tokenize (no stellar_data,
polars or typer), so it runs on a GPU machine with nothing but its own PyTorch stack.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from stellar_train.batching import Packed, collate_flat, collate_packed, collate_padded, flattens, pack
from stellar_train.tokenize import IGNORE_INDEX, Encoded

PAD, BOS, EOS = 0, 1, 2  # LLaMA: unk (the pad) 0, bos 1, eos 2
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]

# LLaMA-2 shapes (init std 0.02, LlamaConfig's default). The tiny ones keep the per-layer gain of 7B's
# init (std 0.02 * sqrt(4096 / hidden)), so their attention is far from uniform and a mask error moves the loss.
SHAPES = {
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    "llama2-13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40),
    "tiny-7b": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4),
    "tiny-13b": dict(hidden_size=96, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4),
}
VOCAB = {"llama2-7b": 32000, "llama2-13b": 32000, "tiny-7b": 400, "tiny-13b": 400}


def llama_config(name: str):
    from transformers import LlamaConfig

    shape = SHAPES[name]
    return LlamaConfig(
        vocab_size=VOCAB[name],
        num_key_value_heads=shape["num_attention_heads"],
        max_position_embeddings=4096,
        initializer_range=0.02 * math.sqrt(4096 / shape["hidden_size"]) if name.startswith("tiny") else 0.02,
        use_cache=False,
        **shape,
    )


@dataclass
class Model:
    name: str
    base: torch.nn.Module  # the transformers model (LoRA layers are injected into it in place)
    params: int  # base parameter count N
    weights_gb: float | None
    peft: torch.nn.Module | None = None

    def lora(self) -> torch.nn.Module:
        """The LoRA-wrapped model (r 8, alpha 16, q/k/v/o, no dropout; B random rather than zero, so
        lora_A gets gradients on the first step too)."""
        if self.peft is None:
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(
                r=8,
                lora_alpha=16,
                lora_dropout=0.0,
                target_modules=LORA_TARGETS,
                bias="none",
                task_type="CAUSAL_LM",
                init_lora_weights=False,
            )
            with torch.device(self.base.device):
                self.peft = get_peft_model(self.base, config)
        return self.peft

    def lora_params(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.lora().named_parameters() if p.requires_grad]


def build(name: str, device: torch.device, dtype: torch.dtype) -> Model:
    """Random-init weights created directly on `device` (no host copy), sdpa attention."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        base = AutoModelForCausalLM.from_config(llama_config(name), dtype=dtype, attn_implementation="sdpa")
    base.config.use_cache = False
    params = sum(p.numel() for p in base.parameters())
    weights = torch.cuda.memory_allocated() / 2**30 if device.type == "cuda" else None
    return Model(name, base, params, weights)


def release(model: Model | None) -> None:
    if model is not None:
        model.base = model.peft = None  # type: ignore[assignment]
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def set_attention(model: Model, name: str) -> None:
    try:
        model.base.set_attn_implementation(name)
    except Exception:  # older transformers, or one that refuses a registered custom name here
        model.base.config._attn_implementation = name
    if model.base.config._attn_implementation != name:
        raise RuntimeError(f"attention implementation is {model.base.config._attn_implementation!r}, not {name!r}")


def set_checkpointing(model: Model, on: bool) -> str:
    """Non-reentrant activation checkpointing on or off; returns the method used (transformers 5.23
    renamed gradient_checkpointing_enable to activation_checkpointing_enable)."""
    base = model.base
    if not on:
        for method in ("activation_checkpointing_disable", "gradient_checkpointing_disable"):
            if hasattr(base, method):
                getattr(base, method)()
                return method
        return "none"
    if hasattr(base, "activation_checkpointing_enable"):
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        method = "activation_checkpointing_enable"
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        method = "gradient_checkpointing_enable"
    base.enable_input_require_grads()
    return method


# --- data -----------------------------------------------------------------------------------------


def example(rng: random.Random, length: int, vocab: int) -> Encoded:
    """BOS + random ids + EOS; the prompt (30-70 %, BOS included) is masked with -100."""
    ids = [BOS, *(rng.randrange(3, vocab) for _ in range(length - 2)), EOS]
    prompt = max(1, min(length - 1, round(length * rng.uniform(0.3, 0.7))))
    return Encoded(ids, [IGNORE_INDEX] * prompt + ids[prompt:])


def uniform_examples(count: int, low: int, high: int, vocab: int, seed: int = 0) -> list[Encoded]:
    rng = random.Random(seed)
    return [example(rng, rng.randint(low, high), vocab) for _ in range(count)]


def sft_examples(count: int, cutoff: int, vocab: int, seed: int = 0) -> list[Encoded]:
    """Alpaca-like lengths: log-normal around 35 % of the cutoff, clipped to [cutoff / 32, cutoff]."""
    rng = random.Random(seed)
    low = max(8, cutoff // 32)
    lengths = [min(cutoff, max(low, round(rng.lognormvariate(math.log(0.35 * cutoff), 0.6)))) for _ in range(count)]
    return [example(rng, n, vocab) for n in lengths]


def label_tokens(examples: Sequence[Encoded]) -> int:
    """Label tokens the shifted loss counts (every first label is -100: BOS, or masked by packing)."""
    return sum(sum(label != IGNORE_INDEX for label in e.labels[1:]) for e in examples)


@dataclass
class Batch:
    tensors: dict[str, torch.Tensor]
    real: int  # non-pad tokens
    labels: int  # label tokens
    slots: int  # input_ids elements (padding included)


def padded_batches(examples: Sequence[Encoded], micro: int) -> list[Batch]:
    groups = [examples[i : i + micro] for i in range(0, len(examples), micro)]
    return [_batch(collate_padded(g, PAD), sum(map(len, g)), label_tokens(g)) for g in groups]


def packed_batches(rows: Sequence[Packed], micro: int, attention: str) -> list[Batch]:
    """The batches the trainer's collator gives `attention`: rows side by side for eager / sdpa, one
    flattened row with cu_seq_lens_q/k and max_length_q/k for varlen kernels (`batching.flattens`);
    counts come from the rows, not from the tensors."""
    groups = [rows[i : i + micro] for i in range(0, len(rows), micro)]
    collate = collate_flat if flattens(attention) else (lambda g: collate_packed(g, PAD))
    return [
        _batch(collate(g), sum(map(len, g)), sum(sum(x != IGNORE_INDEX for x in r.labels) for r in g)) for g in groups
    ]


def _batch(tensors: dict[str, torch.Tensor], real: int, labels: int) -> Batch:
    return Batch(tensors, real, labels, tensors["input_ids"].numel())


def grouped_batches(examples: Sequence[Encoded], micro: int, count: int, seed: int = 0) -> list[Batch]:
    """group_by_length-style: megabatches of 50 micro-batches sorted by length, longest first (as
    transformers' LengthGroupedSampler); `count` batches picked evenly across the first megabatch."""
    pool = list(examples)
    random.Random(seed).shuffle(pool)
    mega = sorted(pool[: 50 * micro], key=len, reverse=True)
    batches = padded_batches(mega, micro)
    return [batches[i * len(batches) // count] for i in range(count)]


def packed_steps(examples: Sequence[Encoded], width: int, micro: int, count: int, attention: str) -> list[Batch]:
    """`count` packed micro-batches of rows of `width` (the last, least full row left out)."""
    rows = pack(examples, width)
    rows = rows[:-1] if len(rows) > count * micro else rows
    if len(rows) < count * micro:
        raise ValueError(f"{len(rows)} packed rows, {count * micro} needed")
    return packed_batches(rows[: count * micro], micro, attention)


def on(device: torch.device, batch: Batch, **extra) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.tensors.items()} | extra


# --- losses and steps ------------------------------------------------------------------------------


def window_loss(model, batches: Sequence[Batch], device: torch.device, total: int, backward: bool = False) -> float:
    """Sum over the micro-batches of the model's loss with num_items_in_batch = total label tokens of
    the window (the Trainer's normalization: sum of token losses / label tokens over the window)."""
    loss = 0.0
    for batch in batches:
        out = model(**on(device, batch, num_items_in_batch=total))
        if backward:
            out.loss.backward()
        loss += float(out.loss.detach().float())
        del out
    return loss


def grads(params: Sequence[tuple[str, torch.nn.Parameter]]) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().float().clone() for n, p in params if p.grad is not None}


def grad_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict:
    """Relative gradient differences: global (L2 over all LoRA tensors) and the largest per tensor."""
    if a.keys() != b.keys() or not a:
        raise RuntimeError(f"gradients for {len(a)} vs {len(b)} LoRA tensors")
    diff = sum(float((a[n] - b[n]).square().sum()) for n in a)
    norm = sum(float(a[n].square().sum()) for n in a)
    per = [float((a[n] - b[n]).norm() / a[n].norm()) for n in a if float(a[n].norm()) > 0]
    return {
        "grad_rel_diff_global": math.sqrt(diff / norm) if norm else 0.0,
        "grad_rel_diff_max_tensor": max(per, default=0.0),
        "lora_tensors": len(a),
        "lora_tensors_with_grad": len(per),
    }


def train_step(model, optimizer, batch: Batch, device: torch.device) -> float:
    out = model(**on(device, batch))
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(out.loss.detach().float())
