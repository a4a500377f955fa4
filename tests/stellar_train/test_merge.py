"""Merging a trained adapter into a fresh base: a complete checkpoint whose logits equal the adapter's,
refused for another base (unless forced) and over a folder that is not a merged checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stellar_train import recipe
from stellar_train.config import from_mapping
from stellar_train.merge import MergeError, merge
from stellar_train.model import base_fingerprint

IDS = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46, 47, 2], [1, 100, 200, 300, 50, 60, 70, 80, 90, 2]])


@pytest.fixture(scope="module")
def adapter(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained adapter (lora_B far from zero, so merging is not a no-op)."""
    out = tmp_path_factory.mktemp("merge") / "adapter"
    config = from_mapping({
        "base_model": str(tiny_model), "data": str(tiny_corpus), "output_dir": str(out), "precision": "fp32",
        "batching": "random", "batch_size": 4, "micro_batch_size": 4, "max_steps": 10, "learning_rate": 2e-2,
        "warmup_steps": 0, "save_steps": 5, "validation_split": "", "lora_target_modules": "q_proj,v_proj,down_proj",
    })  # fmt: skip
    recipe.train(config)
    return out


@pytest.fixture(scope="module")
def other_base(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base of the same shapes with different weights and one config field changed (rms_norm_eps): an
    adapter trained on tiny_model loads into it, but its fingerprint differs."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("other_base")
    config = LlamaConfig.from_pretrained(tiny_model)
    config.rms_norm_eps = 1e-5
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return folder


def load(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_merged_checkpoint_equals_the_adapter(adapter: Path, tiny_model: Path, tmp_path: Path) -> None:
    from peft import PeftModel

    out = merge(str(tiny_model), str(adapter), tmp_path / "merged", dtype="fp32")
    assert out == tmp_path / "merged"
    names = {p.name for p in out.iterdir()}
    assert "config.json" in names and "tokenizer.json" in names and "tokenizer_config.json" in names
    assert any(name.endswith(".safetensors") for name in names)
    assert not any(name.startswith("adapter_") for name in names)
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]  # the staging folder was renamed
    info = json.loads((out / "merge_info.json").read_text(encoding="utf-8"))
    assert info == {
        "base_model": str(tiny_model.resolve()), "base_fingerprint": base_fingerprint(str(tiny_model)),
        "adapter": str(adapter.resolve()), "run_record": str((adapter / "train_config.json").resolve()),
        "dtype": "fp32",
    }  # fmt: skip

    merged = load(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with_adapter = PeftModel.from_pretrained(load(tiny_model), adapter).eval()
    expected = logits(with_adapter)
    torch.testing.assert_close(logits(merged), expected, atol=1e-5, rtol=0)
    assert (logits(load(tiny_model)) - expected).abs().max() > 1e-3  # the adapter changed the model

    from transformers import AutoTokenizer

    text = "What is a pulsar?"
    assert (
        AutoTokenizer.from_pretrained(out)(text)["input_ids"]
        == AutoTokenizer.from_pretrained(tiny_model)(text)["input_ids"]
    )


def test_default_dtype_is_fp16_and_a_merged_folder_is_replaced(adapter: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    merge(str(tiny_model), str(adapter), out, dtype="fp32")
    merge(str(tiny_model), str(adapter), out)  # over an earlier merge: allowed
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config.get("dtype", config.get("torch_dtype")) == "float16"
    assert json.loads((out / "merge_info.json").read_text(encoding="utf-8"))["dtype"] == "fp16"
    from safetensors import safe_open

    shard = next(out.glob("*.safetensors"))
    with safe_open(shard, "pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float16}  # noqa: SIM118


def test_another_base_is_refused_unless_forced(
    adapter: Path, tiny_model: Path, other_base: Path, tmp_path: Path
) -> None:
    assert base_fingerprint(str(other_base)) != base_fingerprint(str(tiny_model))
    with pytest.raises(MergeError, match="fingerprint") as caught:
        merge(str(other_base), str(adapter), tmp_path / "merged", dtype="fp32")
    assert "--force" in str(caught.value)
    assert not (tmp_path / "merged").exists()
    assert not list(tmp_path.iterdir())  # no staging leftovers

    out = merge(str(other_base), str(adapter), tmp_path / "merged", dtype="fp32", force=True)
    assert (out / "merge_info.json").is_file()
    assert json.loads((out / "merge_info.json").read_text())["base_fingerprint"] == base_fingerprint(str(other_base))


def test_refuses_to_replace_a_folder_that_is_not_a_merge(adapter: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(MergeError, match="refusing"):
        merge(str(tiny_model), str(adapter), out, dtype="fp32")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"
    # An empty folder is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (merge(str(tiny_model), str(adapter), empty, dtype="fp32") / "merge_info.json").is_file()


def test_unknown_dtype_is_refused(adapter: Path, tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(MergeError, match="int8"):
        merge(str(tiny_model), str(adapter), tmp_path / "m", dtype="int8")
    assert not (tmp_path / "m").exists()


def test_the_fingerprint_sees_the_weights_not_only_the_config(tiny_model: Path, tmp_path: Path) -> None:
    # A fine-tuned variant has the same config and file sizes; its sampled weight bytes differ.
    from transformers import LlamaForCausalLM

    variant = tmp_path / "variant"
    model = LlamaForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        model.model.embed_tokens.weight.add_(0.01)
    model.save_pretrained(variant)
    (variant / "config.json").write_bytes((tiny_model / "config.json").read_bytes())
    assert base_fingerprint(str(variant)) != base_fingerprint(str(tiny_model))


def test_a_checkpoint_folder_is_checked_against_the_run_it_belongs_to(
    adapter: Path, tmp_path: Path, other_base: Path
) -> None:
    checkpoints = sorted(adapter.glob("checkpoint-*"))
    assert checkpoints, "the adapter fixture saves Trainer checkpoints"
    with pytest.raises(MergeError, match="was trained on"):
        merge(str(other_base), str(checkpoints[-1]), tmp_path / "merged")


def test_a_checkpoint_folder_merges_with_the_base_tokenizer(
    lora_weights: Path, write_run_record, tiny_model: Path, tmp_path: Path
) -> None:
    """A Trainer `checkpoint-N` folder: adapter weights without tokenizer files, the run record in the parent."""
    import shutil

    from peft import PeftModel
    from transformers import AutoTokenizer

    checkpoint = tmp_path / "out" / "checkpoint-2"
    shutil.copytree(lora_weights, checkpoint)
    write_run_record(tmp_path / "out")
    out = merge(str(tiny_model), str(checkpoint), tmp_path / "merged", dtype="fp32")
    text = "What is a pulsar?"
    assert (
        AutoTokenizer.from_pretrained(out)(text)["input_ids"]
        == AutoTokenizer.from_pretrained(tiny_model)(text)["input_ids"]
    )
    expected = logits(PeftModel.from_pretrained(load(tiny_model), checkpoint).eval())
    torch.testing.assert_close(logits(load(out)), expected, atol=1e-5, rtol=0)
    assert (logits(load(tiny_model)) - expected).abs().max() > 1e-3
    info = json.loads((out / "merge_info.json").read_text(encoding="utf-8"))
    assert info["run_record"] == str((tmp_path / "out" / "train_config.json").resolve())
