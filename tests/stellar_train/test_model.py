"""Loading for training: weights straight onto the rank's GPU, and non-reentrant gradient checkpointing
in both the full-precision and the 8-bit preparation path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stellar_train.config import from_mapping
from stellar_train.model import NON_REENTRANT, load_kwargs, prepare_for_training


def test_a_gpu_run_loads_the_weights_onto_its_own_device():
    kwargs = load_kwargs("bf16", False, "sdpa", device=3)
    assert kwargs["device_map"] == {"": 3}  # not into host RAM first
    assert kwargs["dtype"] is torch.bfloat16 and kwargs["attn_implementation"] == "sdpa"
    assert "quantization_config" not in kwargs
    assert "device_map" not in load_kwargs("fp32", False, "sdpa", device=None)


def test_8bit_loads_quantized_onto_its_device():
    kwargs = load_kwargs("fp16", True, "eager", device=1)
    assert kwargs["quantization_config"].load_in_8bit and kwargs["device_map"] == {"": 1}


def checkpointing_kwargs(model) -> list[dict]:
    """The keyword arguments every checkpointed layer calls torch's checkpoint with."""
    layers = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False)]
    assert layers, "no layer is checkpointed"
    return [m._gradient_checkpointing_func.keywords for m in layers]


@pytest.mark.parametrize("load_8bit", [False, True])
def test_gradient_checkpointing_is_non_reentrant_in_every_path(tiny_model: Path, load_8bit: bool):
    """peft's k-bit preparation passes {} unless told, which is the reentrant form: with frozen inputs it
    trains nothing. (On CPU the 8-bit path prepares a full-precision model flagged as 8-bit, the flag
    bitsandbytes loading sets and peft reads.)"""
    from transformers import AutoModelForCausalLM

    settings = from_mapping({"base_model": str(tiny_model), "data": "d", "output_dir": "o",
                             "gradient_checkpointing": True, "load_8bit": load_8bit})  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model.is_loaded_in_8bit = load_8bit
    model = prepare_for_training(model, settings)
    assert model.config.use_cache is False
    assert all(kw == NON_REENTRANT for kw in checkpointing_kwargs(model))
