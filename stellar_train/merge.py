"""Merge a LoRA adapter into a freshly loaded fp16 / bf16 base and export a full checkpoint.

Never into an 8-bit base (its rounded weights would be baked in). The adapter's run record names
the base it was trained on (fingerprint of config.json and weight files); another base is refused.
The output (safetensors shards, tokenizer) is written to a staging folder and renamed into place.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from .model import DTYPES, base_fingerprint, read_run_config

MERGE_DTYPES = ("bf16", "fp16", "fp32")


class MergeError(ValueError):
    """An adapter that does not belong to the base, or an output that cannot be written."""


def check_base(model_path: str, adapter: str) -> None:
    recorded = read_run_config(adapter).get("base_model", {})
    if not recorded:
        return  # an adapter made elsewhere: peft checks shapes when it loads
    actual = base_fingerprint(model_path)
    if recorded.get("fingerprint") != actual:
        raise MergeError(
            f"adapter {adapter} was trained on {recorded.get('path')} "
            f"(fingerprint {str(recorded.get('fingerprint'))[:12]}), "
            f"not on {model_path} (fingerprint {actual[:12]}); pass --force to merge anyway"
        )


def merge(
    model_path: str,
    adapter: str,
    out: str | Path,
    *,
    dtype: str = "fp16",
    max_shard_size: str = "2GB",
    force: bool = False,
) -> Path:
    """Write base + adapter as one Hugging Face checkpoint in `out`; returns `out`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in MERGE_DTYPES:
        raise MergeError(f"dtype {dtype!r} is not one of {', '.join(MERGE_DTYPES)}")
    if not force:
        check_base(model_path, adapter)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "merge_info.json").is_file():
        raise MergeError(f"{out}: exists and is not a merged checkpoint; refusing to replace it")
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=DTYPES[dtype])
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    tokenizer_source = adapter if (Path(adapter) / "tokenizer_config.json").is_file() else model_path
    staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        merged.save_pretrained(staging, max_shard_size=max_shard_size)
        AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(staging)
        info = {
            "base_model": model_path,
            "base_fingerprint": base_fingerprint(model_path),
            "adapter": str(adapter),
            "dtype": dtype,
        }
        (staging / "merge_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
