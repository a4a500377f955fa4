"""Loading the tokenizer and the base model, the LoRA wrapper, and the base model's fingerprint."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .config import ConfigError, TrainConfig
from .tokenize import SpecialIds

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def load_tokenizer(path: str):
    """The base's tokenizer, right-padded, with pad != eos (else the EOS label would be masked)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise ConfigError(f"base_model {path}: cannot load its tokenizer ({str(exc).splitlines()[0]})") from None
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"base_model {path}: the tokenizer has no EOS token")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
            tokenizer.pad_token = tokenizer.unk_token  # LLaMA: unk 0, the usual pad
        else:
            raise ConfigError(f"base_model {path}: no pad token distinct from EOS (add one to the tokenizer)")
    tokenizer.padding_side = "right"
    return tokenizer


def special_ids(tokenizer) -> SpecialIds:
    return SpecialIds(tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)


def text_tokenizer(tokenizer):
    """Text -> ids without special tokens (BOS and EOS are placed by `tokenize.encode`)."""
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


def batch_text_tokenizer(tokenizer):
    """Texts -> ids lists without special tokens, one call for many texts (the fast tokenizer's batch path)."""
    return lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]


def module_names(path: str) -> list[str]:
    """The model's module names, from a meta-device instance (no weights are loaded)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return [name for name, _ in model.named_modules()]


def base_fingerprint(path: str) -> str:
    """What an adapter records of its base, so merging refuses another one: sha256 of config.json and,
    per weight file, its name, size and first and last MiB (a same-shape fine-tune differs there;
    reading 2 MiB per file keeps this fast for a 7B model)."""
    folder = Path(path)
    if not folder.is_dir():
        return f"hub:{path}"
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()


def load_kwargs(precision: str, load_8bit: bool, attn_implementation: str, *, device: int | None) -> dict:
    """`from_pretrained` arguments: on a GPU (`device`, its index) the weights load straight onto it
    (without `device_map` a full-precision model is built in host RAM first: 26 GB per rank for 13B)."""
    from transformers import BitsAndBytesConfig

    kwargs: dict = {"dtype": DTYPES[precision], "attn_implementation": attn_implementation}
    if load_8bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if device is not None:
        kwargs["device_map"] = {"": device}
    return kwargs


def rank_device() -> int | None:
    """This process's GPU: its local rank among the visible ones (a launcher may give each process
    its own single visible GPU), None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()


def load_base(path: str, precision: str, load_8bit: bool = False, attn_implementation: str = "sdpa"):
    from transformers import AutoModelForCausalLM

    kwargs = load_kwargs(precision, load_8bit, attn_implementation, device=rank_device())
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def lora_config(config: TrainConfig):
    from peft import LoraConfig

    targets = config.lora_target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear" if tuple(targets) == ("all-linear",) else list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )


NON_REENTRANT = {"use_reentrant": False}
"""Gradient checkpointing's form in every path: the reentrant one trains nothing through frozen inputs."""


def prepare_for_training(model, config: TrainConfig):
    """No cache (it disables packed-sequence masking and wastes memory); k-bit preparation only for an
    8-bit model; non-reentrant gradient checkpointing when asked, in both paths."""
    from peft import prepare_model_for_kbit_training

    model.config.use_cache = False
    if config.load_8bit:
        return prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs=NON_REENTRANT,
        )
    if config.gradient_checkpointing:
        # transformers 5.23 renamed gradient_checkpointing_enable (and its kwargs); older ones lack the new name.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=NON_REENTRANT)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=NON_REENTRANT)
        model.enable_input_require_grads()
    return model


def load_for_training(config: TrainConfig):
    """The base (8-bit only if asked) prepared for training and wrapped with LoRA adapters."""
    from peft import get_peft_model

    model = load_base(config.base_model, config.precision, config.load_8bit, config.attn_implementation)
    return get_peft_model(prepare_for_training(model, config), lora_config(config))


def tokenizer_source(model_path: str, adapter: str | None) -> str:
    """Where to load the tokenizer from: the adapter's folder when it holds one (train saves it beside
    the adapter), else the base (a Trainer `checkpoint-N` folder has adapter weights only)."""
    if adapter and (Path(adapter) / "tokenizer_config.json").is_file():
        return adapter
    return model_path
