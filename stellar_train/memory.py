"""A peak GPU memory estimate for LoRA training, printed by a dry run; `bench/gpu_check.py` measures it.

Counted per token of a micro-batch and per decoder layer, in bytes, for a LLaMA block in 16-bit with
LoRA on some of the attention projections, as eager PyTorch autograd keeps them for the backward
pass (sdpa / flash attention store no attention matrix):
- each RMSNorm (two): its input upcast to fp32 and the normalized fp32 product (4h + 4h), the 16-bit
  output (2h);
- attention: the q/k/v inputs (2h), q, k, v (6h), rotary q and k with their rotate_half parts (8h),
  the attention output and o_proj's input (2h + 2h);
- LoRA per adapted projection: the dropout mask (1 byte) and dropped input (2h);
- the MLP: gate and up outputs, the SiLU output and the product (4 x 2 x intermediate), its input (2h).
Plus the frozen weights (2 bytes a parameter, 1 in 8-bit), the LoRA weights with fp32 AdamW state, and
the logits (16-bit, fp32 upcast and its gradient: 10 bytes per token per vocabulary entry).
With gradient checkpointing only each layer's input (2h) is kept, plus one layer's activations
while it is recomputed. An estimate, not a promise: allocator fragmentation and workspace add some;
eager attention's (heads x length x length) weights are not counted (use sdpa or flash-attention),
nor LoRA on the MLP projections' wider inputs (`all-linear` is counted as seven hidden-width inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class Shape:
    hidden: int
    intermediate: int
    layers: int
    vocab: int
    parameters: int

    @classmethod
    def of(cls, config) -> Shape:
        """From a transformers LlamaConfig-like config (parameters counted from the shapes)."""
        h, i, n, v = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
        kv = h * getattr(config, "num_key_value_heads", config.num_attention_heads) // config.num_attention_heads
        per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
        tied = getattr(config, "tie_word_embeddings", False)
        return cls(h, i, n, v, n * per_layer + v * h * (1 if tied else 2) + h)


def layer_bytes_per_token(shape: Shape, adapted: int) -> int:
    h, i = shape.hidden, shape.intermediate
    norms = 2 * (4 * h + 4 * h + 2 * h)
    attention = 2 * h + 6 * h + 8 * h + 2 * h + 2 * h
    lora = adapted * (1 * h + 2 * h)
    mlp = 4 * 2 * i + 2 * h
    return norms + attention + lora + mlp


def estimate_peak_bytes(
    shape: Shape,
    tokens: int,
    *,
    adapted: int = 4,
    lora_r: int = 8,
    load_8bit: bool = False,
    checkpointing: bool = False,
) -> int:
    """Peak bytes for one micro-batch of `tokens` tokens (`adapted` LoRA projections per layer)."""
    weights = shape.parameters * (1 if load_8bit else 2)
    lora_parameters = shape.layers * adapted * 2 * lora_r * shape.hidden
    lora = lora_parameters * (4 + 4 + 8)  # fp32 weights, gradients, AdamW moments
    per_layer = layer_bytes_per_token(shape, adapted) * tokens
    activations = shape.layers * 2 * shape.hidden * tokens + per_layer if checkpointing else shape.layers * per_layer
    logits = tokens * shape.vocab * 10
    return weights + lora + activations + logits
