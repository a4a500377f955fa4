"""A variable-length ("padding-free") attention for transformers, registered as `stellar_varlen`.

The function is registered through transformers' public `AttentionInterface`, and a mask function
under the same name through `AttentionMaskInterface` (without one, masking_utils hands a custom
attention name no mask at all). The mask function passes the 2D padding mask through, or None when
nothing is padded; sequence boundaries then come from, in this order:

1. `cu_seq_lens_q` / `cu_seq_lens_k` (+ `max_length_q` / `max_length_k`) keyword arguments, as a
   flattening collator passes them;
2. the 2D padding mask (a padded batch: each row's kept tokens are one sequence);
3. restarts of `position_ids` (packed rows: a new sequence wherever the position is not the previous
   one plus 1, and at every row start), so a (1, B*W) or (B, W) packed batch works unchanged;
4. else every row is one causal sequence.

Query, key and value are flattened to (tokens, heads, head_dim) and handed to one of these kernels,
the first that is there: `torch.nn.attention.varlen.varlen_attn` (its signature is read at run
time: newer torch takes `window_size=(-1, 0)` for causal, older `is_causal=True`), flash-attn's
`flash_attn_varlen_func`, or, on CPU only, a per-sequence SDPA loop (a reference that exercises
the same boundary code; the fused kernels need a GPU). On a GPU with neither kernel, `select`
returns None and a reason.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F

NAME = "stellar_varlen"

Kernel = Callable[..., torch.Tensor]
"""(q, k, v, cu_q, cu_k, max_q, max_k, scale) -> out, with q/k/v and out (tokens, heads, head_dim)."""


def _torch_varlen(varlen_attn) -> Kernel:
    params = inspect.signature(varlen_attn).parameters
    causal = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}

    def kernel(q, k, v, cu_q, cu_k, max_q, max_k, scale):
        extra = dict(causal)
        if "scale" in params:
            extra["scale"] = scale
        if k.shape[1] != q.shape[1]:
            if "enable_gqa" in params:
                extra["enable_gqa"] = True
            else:
                k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
        return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, **extra)

    return kernel


def _flash_attn(flash_attn_varlen_func) -> Kernel:
    def kernel(q, k, v, cu_q, cu_k, max_q, max_k, scale):
        return flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale=scale, causal=True)

    return kernel


def _reference(q, k, v, cu_q, cu_k, max_q, max_k, scale):
    """One causal SDPA call per sequence (CPU stand-in for the fused kernels)."""
    if k.shape[1] != q.shape[1]:
        k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
    out = torch.empty_like(q)
    bounds = cu_q.tolist()
    for start, end in itertools.pairwise(bounds):
        if end > start:
            part = [t[start:end].transpose(0, 1) for t in (q, k, v)]  # (heads, length, dim)
            out[start:end] = F.scaled_dot_product_attention(*part, is_causal=True, scale=scale).transpose(0, 1)
    return out


def select(device: torch.device) -> tuple[Kernel | None, str]:
    """The kernel for this device and what it is, or (None, why there is none)."""
    if device.type != "cuda":
        return _reference, "reference: per-sequence SDPA loop (no CUDA; the varlen kernels need a GPU)"
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        pass
    else:
        return _torch_varlen(varlen_attn), f"torch.nn.attention.varlen.varlen_attn (torch {torch.__version__})"
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        pass
    else:
        return _flash_attn(flash_attn_varlen_func), "flash_attn.flash_attn_varlen_func"
    return None, f"torch {torch.__version__} has no torch.nn.attention.varlen and flash_attn is not installed"


def _cu(lengths: torch.Tensor) -> torch.Tensor:
    lengths = lengths[lengths > 0]
    return F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)


class _Boundaries:
    """Sequence boundaries of one forward pass, computed once and reused by every layer (the cache
    holds the tensor it was computed from, so identity means the same batch)."""

    def __init__(self) -> None:
        self._source: torch.Tensor | None = None
        self._value: tuple = ()

    def __call__(self, batch: int, length: int, mask: torch.Tensor | None, kwargs: dict):
        """(cu_q, cu_k, max_q, max_k, kept token indices or None) for a (batch, length) input."""
        cu_q = kwargs.get("cu_seq_lens_q")
        if cu_q is not None:
            cu_k = kwargs.get("cu_seq_lens_k", cu_q)
            max_q = kwargs.get("max_length_q") or int((cu_q[1:] - cu_q[:-1]).max())
            max_k = kwargs.get("max_length_k") or int((cu_k[1:] - cu_k[:-1]).max())
            return cu_q.to(torch.int32), cu_k.to(torch.int32), int(max_q), int(max_k), None
        source = mask if mask is not None else kwargs.get("position_ids")
        if source is None or source is not self._source:
            self._value = self._compute(batch, length, mask, kwargs.get("position_ids"))
            self._source = source
        return self._value

    @staticmethod
    def _compute(batch: int, length: int, mask: torch.Tensor | None, position_ids: torch.Tensor | None):
        if mask is not None:  # padded: the kept tokens of each row form one sequence
            mask = mask.bool()
            cu = _cu(mask.sum(1))
            keep = mask.flatten().nonzero().squeeze(1)
        elif position_ids is not None:  # packed: a sequence starts wherever positions restart
            flat = position_ids.expand(batch, length).flatten()
            start = torch.ones_like(flat, dtype=torch.bool)
            start[1:] = flat[1:] != flat[:-1] + 1
            start[::length] = True
            starts = start.nonzero().squeeze(1)
            cu = F.pad(starts, (0, 1), value=flat.numel()).to(torch.int32)
            keep = None
        else:
            cu = torch.arange(0, (batch + 1) * length, length, dtype=torch.int32)
            keep = None
        cu = cu.to(position_ids.device if position_ids is not None else cu.device)
        longest = int((cu[1:] - cu[:-1]).max())
        return cu, cu, longest, longest, keep


def make_attention(kernel: Kernel):
    """An attention function in transformers' calling convention, using `kernel`."""
    boundaries = _Boundaries()

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        batch, heads, length, dim = query.shape
        flat = [t.transpose(1, 2).reshape(batch * length, t.shape[1], dim) for t in (query, key, value)]
        cu_q, cu_k, max_q, max_k, keep = boundaries(batch, length, attention_mask, kwargs)
        if keep is not None:
            flat = [t.index_select(0, keep) for t in flat]
        cu_q, cu_k = cu_q.to(query.device), cu_k.to(query.device)
        out = kernel(*flat, cu_q, cu_k, max_q, max_k, scaling)
        if keep is not None:
            out = out.new_zeros(batch * length, heads, dim).index_copy(0, keep, out)
        return out.view(batch, length, heads, dim), None

    return attention


def padding_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, attention_mask=None, **kwargs):
    """The mask function for `stellar_varlen`: the 2D padding mask, or None when nothing is padded
    (packed rows carry their boundaries in position_ids or cu_seq_lens instead)."""
    if attention_mask is None:
        return None
    attention_mask = attention_mask[:, -kv_length:]
    return None if bool(attention_mask.all()) else attention_mask


def register(device: torch.device) -> tuple[bool, str]:
    """Register `stellar_varlen` (and its mask function) for this device: (registered, the kernel's
    description or why there is none)."""
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    kernel, description = select(device)
    if kernel is not None:
        AttentionInterface.register(NAME, make_attention(kernel))
        AttentionMaskInterface.register(NAME, padding_mask)
    return kernel is not None, description
