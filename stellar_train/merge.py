"""Merge a LoRA adapter into a freshly loaded fp16 / bf16 base and export a full checkpoint.

Never into an 8-bit base (its rounded weights would be baked in). The adapter's run record names
the base it was trained on (fingerprint of config.json and weight files); another base is refused.
The output (safetensors shards, tokenizer) is written to a staging folder and renamed into place.

`merge_info.json` names what was merged by resolved paths, so the merged checkpoint is described from
any working directory: `base_model` (a folder; a hub id as given), `adapter`, `run_record` (the
adapter's train_config.json, None without one) and `resolved.data`: the run record's `config.data`
resolved here when it is a relative path that exists from this working directory (usually the one
training ran in). The eval runner reads the run record through it for the contamination guard.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from .model import DTYPES, base_fingerprint, tokenizer_source
from .run_record import read_run_config, run_record_path

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


def merge_info(model_path: str, adapter: str, dtype: str) -> dict:
    """What merge_info.json records (see the module docstring)."""
    record = run_record_path(adapter)
    info = {
        "base_model": str(Path(model_path).resolve()) if Path(model_path).is_dir() else model_path,
        "base_fingerprint": base_fingerprint(model_path),
        "adapter": str(Path(adapter).resolve()),
        "run_record": str(record.resolve()) if record else None,
        "dtype": dtype,
    }
    data = read_run_config(adapter).get("config", {}).get("data")
    if isinstance(data, str) and not Path(data).is_absolute() and Path(data).exists():
        info["resolved"] = {"data": str(Path(data).resolve())}
    return info


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
    staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        merged.save_pretrained(staging, max_shard_size=max_shard_size)
        AutoTokenizer.from_pretrained(tokenizer_source(model_path, adapter)).save_pretrained(staging)
        info = merge_info(model_path, adapter, dtype)
        (staging / "merge_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
