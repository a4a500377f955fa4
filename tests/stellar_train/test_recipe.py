"""The LoRA recipe end to end on a tiny LLaMA (CPU, fp32): the loss falls, only the adapter changes, the
outputs and run record are complete, the adapter reloads exactly, gradient accumulation equals one large
batch, packed rows give the same loss as separate examples, resuming equals not stopping, and config
errors come before any model loads."""

from __future__ import annotations

import hashlib
import itertools
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from stellar_train import recipe
from stellar_train.batching import collate_packed, collate_padded, pack
from stellar_train.config import ConfigError, from_mapping
from stellar_train.data import encode_records
from stellar_train.model import base_fingerprint, load_tokenizer, special_ids, text_tokenizer
from stellar_train.prompt import PromptTemplate
from stellar_train.schedule import plan
from tests.conftest import ROOT

from .conftest import TRIPLES

TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head"


def make_config(base: Path, data: Path, out: Path, **fields: Any):
    values: dict[str, Any] = {
        "base_model": str(base),
        "data": str(data),
        "output_dir": str(out),
        "precision": "fp32",
        "batching": "random",
        "batch_size": 4,
        "micro_batch_size": 4,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "warmup_steps": 0,
        "logging_steps": 1,
        "cutoff_len": 128,
        "save_steps": 0,
        "eval_steps": 0,
    }
    values.update(fields)
    return from_mapping(values)


def train_capturing(config):
    """Runs the recipe and also returns the in-memory PEFT model it trained."""
    captured = {}
    original = recipe.load_for_training

    def spy(cfg):
        captured["model"] = original(cfg)
        return captured["model"]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recipe, "load_for_training", spy)
        result = recipe.train(config)
    return result, captured["model"]


def fresh_base(path: Path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.config.use_cache = False
    return model.eval()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def losses(run: dict[str, Any]) -> list[float]:
    return [entry["loss"] for entry in run["log_history"] if "loss" in entry]


def lora_state(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "adapter_model.safetensors")


def assert_same_tensors(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor], atol: float) -> None:
    assert left.keys() == right.keys()
    for key in left:
        torch.testing.assert_close(left[key], right[key], atol=atol, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """60 steps at lr 1e-2 on the 8-example corpus (2 batches of 4), LoRA on every linear layer and the
    LM head (the frozen random head alone bounds the logits): the train loss falls from ~6 to ~1."""
    weights_before = sha256(tiny_model / "model.safetensors")
    out = tmp_path_factory.mktemp("trained") / "adapter"
    config = make_config(
        tiny_model,
        tiny_corpus,
        out,
        max_steps=60,
        learning_rate=1e-2,
        lora_dropout=0.0,
        validation_split="validation",
        lora_target_modules=TARGETS,
    )
    result, model = train_capturing(config)
    return config, result, model.eval(), weights_before


# ---------------------------------------------------------------------------------------------- training


def test_loss_falls_on_the_memorized_corpus(trained) -> None:
    _, result, _, _ = trained
    logged = losses(result.run)
    assert len(logged) == 60
    assert logged[-1] < 0.5 * logged[0], logged
    assert result.metrics["train_loss"] > 0
    assert "eval_loss" in result.metrics and result.metrics["eval_loss"] < logged[0]


def test_base_weights_unchanged_and_every_lora_b_trained(trained, tiny_model: Path) -> None:
    _, _, model, weights_before = trained
    assert sha256(tiny_model / "model.safetensors") == weights_before
    base = fresh_base(tiny_model).state_dict()
    trained_base = {
        name.removeprefix("base_model.model.").replace(".base_layer.", "."): tensor
        for name, tensor in model.state_dict().items()
        if "lora_" not in name
    }
    assert trained_base.keys() == base.keys()
    for name, tensor in base.items():
        assert torch.equal(trained_base[name], tensor), f"base weight {name} changed in training"
    lora_b = {name: p for name, p in model.named_parameters() if "lora_B" in name}
    assert len(lora_b) == 2 * 7 + 1  # 2 layers x 7 linear layers, and the LM head
    for name, parameter in lora_b.items():
        assert parameter.norm() > 0, f"{name} was never updated"
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)


def test_output_folder_and_run_record(trained, tiny_model: Path, tiny_corpus: Path) -> None:
    config, result, _, _ = trained
    out = Path(config.output_dir)
    assert result.output_dir == out
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    adapter_keys = lora_state(out).keys()
    # Only LoRA weights, except the LM head's own weight, which peft saves for an "embedding" target.
    others = [key for key in adapter_keys if "lora_" not in key]
    assert len(adapter_keys) == 2 * (2 * 7 + 1) + len(others)
    assert others in ([], ["base_model.model.lm_head.base_layer.weight"])
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert sorted(adapter_config["target_modules"]) == sorted(TARGETS.split(","))
    assert adapter_config["r"] == 8 and adapter_config["lora_alpha"] == 16

    run = json.loads((out / recipe.RUN_CONFIG).read_text(encoding="utf-8"))
    assert run["config"]["learning_rate"] == 1e-2 and run["config"]["precision"] == "fp32"
    assert run["config"]["base_model"] == str(tiny_model) and run["config"]["data"] == str(tiny_corpus)
    assert run["world_size"] == 1 and run["gradient_accumulation_steps"] == 1
    assert run["template"]["name"] == "stellarspeak"
    assert run["base_model"] == {"path": str(tiny_model), "fingerprint": base_fingerprint(str(tiny_model))}
    assert len(run["base_model"]["fingerprint"]) == 64
    assert run["corpus_manifest_sha256"] is None  # a plain JSON dataset has no manifest
    for package in ("torch", "transformers", "peft"):
        assert run["versions"][package] == metadata.version(package)
    tokenization = run["tokenization"]
    assert tokenization["train"]["total"] == tokenization["train"]["kept"] == len(TRIPLES)
    assert tokenization["train_rows"] == len(TRIPLES)
    assert tokenization["validation"]["total"] == 3
    assert run["metrics"]["train_loss"] == pytest.approx(result.metrics["train_loss"])
    assert losses(run) == losses(result.run)


def test_adapter_round_trip_gives_the_same_logits(trained, tiny_model: Path) -> None:
    from peft import PeftModel

    config, _, model, _ = trained
    ids = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46, 47, 2]])
    reloaded = PeftModel.from_pretrained(fresh_base(tiny_model), config.output_dir).eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        actual = reloaded(input_ids=ids).logits
        base = fresh_base(tiny_model)(input_ids=ids).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    assert (actual - base).abs().max() > 1e-2  # the adapter does something


# ------------------------------------------------------------------------------- gradient accumulation


def test_gradient_accumulation_equals_one_large_batch(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """bs 4 x GA 1 vs bs 1 x GA 4 (the same 4 examples per step: the random sampler's permutation does not
    depend on the micro batch size): the same gradient norms, losses and adapter weights."""
    common = {"max_steps": 2, "learning_rate": 1e-3, "lora_dropout": 0.0, "validation_split": ""}
    one = recipe.train(make_config(tiny_model, tiny_corpus, tmp_path / "ga1", micro_batch_size=4, **common))
    four = recipe.train(make_config(tiny_model, tiny_corpus, tmp_path / "ga4", micro_batch_size=1, **common))
    assert one.run["gradient_accumulation_steps"] == 1 and four.run["gradient_accumulation_steps"] == 4
    logs_one = [e for e in one.run["log_history"] if "loss" in e]
    logs_four = [e for e in four.run["log_history"] if "loss" in e]
    assert len(logs_one) == len(logs_four) == 2
    for a, b in zip(logs_one, logs_four, strict=True):
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5, abs=1e-7)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    assert_same_tensors(lora_state(tmp_path / "ga4"), lora_state(tmp_path / "ga1"), atol=1e-6)


# ------------------------------------------------------------------------------------------- packing


@pytest.fixture(scope="module")
def encoded_examples(tiny_model: Path):
    tokenizer = load_tokenizer(str(tiny_model))
    examples, stats = encode_records(
        TRIPLES, text_tokenizer(tokenizer), special_ids(tokenizer), PromptTemplate.load("stellarspeak"), 512,
        "truncate_prompt", False,
    )  # fmt: skip
    assert stats.kept == len(TRIPLES)
    return examples, tokenizer.pad_token_id


def forward(model, batch: dict[str, torch.Tensor]):
    with torch.no_grad():
        return model(**batch)


def split_rows(logits: torch.Tensor, rows, examples) -> list[tuple[int, bool, torch.Tensor]]:
    """A packed batch's logits cut back into examples: (example index, first of its sequence, logits). The
    batch is either the rows flattened into one sequence (1, total) or side by side (rows, width).
    Packing may reorder examples; each piece is matched to its example by its token ids."""
    by_ids = {tuple(e.input_ids): i for i, e in enumerate(examples)}
    assert len(by_ids) == len(examples)
    flat = logits.shape[0] == 1 and len(rows) > 1
    pieces = []
    offset = 0
    for index, row in enumerate(rows):
        line, base = (logits[0], offset) if flat else (logits[index], 0)
        starts = [i for i, p in enumerate(row.position_ids) if p == 0] + [len(row)]
        for number, (a, b) in enumerate(itertools.pairwise(starts)):
            first = number == 0 and (index == 0 or not flat)
            pieces.append((by_ids[tuple(row.input_ids[a:b])], first, line[base + a : base + b]))
        offset += len(row)
    assert sorted(i for i, _, _ in pieces) == list(range(len(examples)))
    return pieces


@pytest.mark.parametrize("rows", [1, 3])
def test_packed_loss_equals_per_example_loss(tiny_model: Path, encoded_examples, rows: int) -> None:
    """Mean loss over label tokens and every example's logits are the same packed or padded; with plain
    0..n positions over a packed row (no restart) examples attend to earlier ones and both change."""
    examples, pad = encoded_examples
    width = sum(len(e) for e in examples) if rows == 1 else 2 * max(len(e) for e in examples) + 1
    packed = pack(examples, width)
    assert len(packed) == 1 if rows == 1 else len(packed) > 1
    assert sum(len(r) for r in packed) == sum(len(e) for e in examples)
    model = fresh_base(tiny_model)
    padded_batch = collate_padded(examples, pad)
    packed_batch = collate_packed(packed, pad)
    # The same label tokens on both sides (the packed row masks each example's first label, BOS's).
    assert (packed_batch["labels"] != -100).sum() == (padded_batch["labels"] != -100).sum()
    separate = forward(model, padded_batch)
    together = forward(model, packed_batch)
    torch.testing.assert_close(together.loss, separate.loss, atol=1e-5, rtol=0)
    for index, _, got in split_rows(together.logits, packed, examples):
        torch.testing.assert_close(got, separate.logits[index, : len(examples[index])], atol=1e-5, rtol=0)

    plain = {name: packed_batch[name] for name in ("input_ids", "labels")}  # no boundaries either
    plain["position_ids"] = torch.arange(packed_batch["input_ids"].shape[1]).expand_as(packed_batch["input_ids"])
    leaked = forward(model, plain)
    assert (leaked.loss - separate.loss).abs() > 1e-4
    # An example that starts the sequence sees nothing before it either way; every later one changes.
    for index, first, got in split_rows(leaked.logits, packed, examples):
        difference = (got - separate.logits[index, : len(examples[index])]).abs().max()
        if first:
            assert difference <= 1e-5
        else:
            assert difference > 1e-3, f"example {index}: the same logits with positions 0..n over the row"


def test_packed_batching_trains_fewer_rows(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    config = make_config(
        tiny_model, tiny_corpus, tmp_path / "packed", batching="packed", batch_size=2, micro_batch_size=2,
        max_steps=2, cutoff_len=256, pack_len=300, validation_split="validation",
    )  # fmt: skip
    result = recipe.train(config)
    tokenization = result.run["tokenization"]
    assert tokenization["train"]["kept"] == len(TRIPLES)
    assert 1 < tokenization["train_rows"] < len(TRIPLES)  # two or three examples a row
    schedule = result.run["schedule"]
    assert schedule["examples"] == len(TRIPLES) and schedule["rows"] == tokenization["train_rows"]
    assert schedule["optimizer_steps"] == 2 and schedule["tokens_per_step"] > 0
    assert result.metrics["train_examples_per_second"] > 0
    logged = losses(result.run)
    assert len(logged) == 2 and all(loss > 0 and loss == loss for loss in logged)
    assert result.metrics["eval_loss"] == result.metrics["eval_loss"]  # evaluation (padded) is not NaN
    assert (tmp_path / "packed" / "adapter_model.safetensors").is_file()


def test_group_by_length_the_default_batching_trains(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    config = make_config(tiny_model, tiny_corpus, tmp_path / "grouped", batching="group_by_length", validation_split="")
    schedule = plan(config, examples=len(TRIPLES), rows=len(TRIPLES), tokens=100)
    assert recipe.training_arguments(config, schedule, has_eval=False).train_sampling_strategy == "group_by_length"
    result = recipe.train(config)
    assert len(losses(result.run)) == 2 and result.run["tokenization"]["train_rows"] == len(TRIPLES)


def test_gradient_checkpointing_trains_the_same_adapter(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """Recomputing activations changes nothing numerically, and every lora_B still gets gradients."""
    common = {"lora_dropout": 0.0, "learning_rate": 1e-2, "validation_split": ""}
    plain = recipe.train(make_config(tiny_model, tiny_corpus, tmp_path / "plain", **common))
    result, model = train_capturing(
        make_config(tiny_model, tiny_corpus, tmp_path / "checkpointed", gradient_checkpointing=True, **common)
    )
    inner = model.base_model.model
    on = (
        inner.is_activation_checkpointing
        if hasattr(inner, "is_activation_checkpointing")
        else inner.is_gradient_checkpointing
    )
    assert on
    assert losses(result.run) == pytest.approx(losses(plain.run), rel=1e-5)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            assert parameter.norm() > 0, name
    assert_same_tensors(lora_state(tmp_path / "checkpointed"), lora_state(tmp_path / "plain"), atol=1e-6)


# -------------------------------------------------------------------------------------------- resume


def test_resume_from_checkpoint_equals_the_uninterrupted_run(
    tiny_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    common = {"max_steps": 4, "save_steps": 2, "learning_rate": 1e-2, "validation_split": ""}
    full = recipe.train(make_config(tiny_model, tiny_corpus, tmp_path / "full", **common))
    checkpoint = tmp_path / "full" / "checkpoint-2"
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
        assert (checkpoint / name).is_file(), name
    resumed = recipe.train(
        make_config(tiny_model, tiny_corpus, tmp_path / "resumed", resume_from_checkpoint=str(checkpoint), **common)
    )
    full_losses = {e["step"]: e["loss"] for e in full.run["log_history"] if "loss" in e}
    resumed_losses = {e["step"]: e["loss"] for e in resumed.run["log_history"] if "loss" in e}
    assert sorted(full_losses) == [1, 2, 3, 4]
    for step in (3, 4):
        assert resumed_losses[step] == pytest.approx(full_losses[step], rel=1e-5)
    assert_same_tensors(lora_state(tmp_path / "resumed"), lora_state(tmp_path / "full"), atol=1e-6)


def test_resume_latest_picks_the_newest_checkpoint(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    common = {"save_steps": 2, "learning_rate": 1e-2, "validation_split": ""}
    out = tmp_path / "run"
    recipe.train(make_config(tiny_model, tiny_corpus, out, max_steps=2, **common))
    assert (out / "checkpoint-2").is_dir()
    longer = make_config(tiny_model, tiny_corpus, out, max_steps=4, resume_from_checkpoint="latest", **common)
    with pytest.raises(ConfigError, match=r"trained differently \(max_steps: 2 -> 4\); pass --force"):
        recipe.train(longer)  # another schedule: refused, and the run's record is left as it was
    assert json.loads((out / recipe.RUN_CONFIG).read_text(encoding="utf-8"))["config"]["max_steps"] == 2
    resumed = recipe.train(longer, force=True)
    steps = [e["step"] for e in resumed.run["log_history"] if "loss" in e]
    assert steps[-2:] == [3, 4] and resumed.run["log_history"][-1]["step"] == 4
    # Forced past a change, the record describes the run as it now is (what merge, chat and the eval
    # guard read); the resume lists what changed and keeps the earlier record.
    saved = json.loads((out / recipe.RUN_CONFIG).read_text(encoding="utf-8"))
    assert saved["config"]["max_steps"] == 4
    [entry] = saved["resumes"]
    assert entry["changes"] == ["max_steps: 2 -> 4"] and entry["checkpoint"] == str(out / "checkpoint-2")
    assert entry["previous"]["config"]["max_steps"] == 2


def test_resuming_the_same_run_keeps_its_record(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    common = {"save_steps": 2, "max_steps": 4, "learning_rate": 1e-2, "validation_split": ""}
    out = tmp_path / "run"
    first = recipe.train(make_config(tiny_model, tiny_corpus, out, **common))
    resumed = recipe.train(make_config(tiny_model, tiny_corpus, out, resume_from_checkpoint="latest", **common))
    saved = json.loads((out / recipe.RUN_CONFIG).read_text(encoding="utf-8"))
    assert saved["config"] == json.loads(json.dumps(first.run["config"]))  # not replaced by the resume's
    assert [r["changes"] for r in saved["resumes"]] == [[]] and saved["resumes"][0]["checkpoint"].endswith(
        "checkpoint-4"
    )
    assert json.loads(json.dumps(resumed.run["resumes"])) == saved["resumes"]


# ------------------------------------------------------------------------------------- built corpus


def test_trains_on_a_built_corpus_and_records_its_manifest(tiny_model: Path, tmp_path: Path) -> None:
    import stellar_data

    corpus = stellar_data.build(ROOT / "corpus" / "default.toml", out=tmp_path / "c", workers=1)
    config = make_config(
        tiny_model, tmp_path / "c", tmp_path / "out", max_steps=1, batch_size=2, micro_batch_size=2, cutoff_len=256,
        validation_split="",
    )  # fmt: skip
    result = recipe.train(config)
    assert result.run["corpus_manifest_sha256"] == sha256(tmp_path / "c" / "manifest.json")
    train_rows = corpus.frame_of("train").collect().height
    assert result.run["tokenization"]["train"]["total"] == train_rows
    assert result.run["tokenization"]["train"]["kept"] >= 1
    saved = json.loads((tmp_path / "out" / recipe.RUN_CONFIG).read_text(encoding="utf-8"))
    assert saved["corpus_manifest_sha256"] == result.run["corpus_manifest_sha256"]


# ----------------------------------------------------------------------------------- config errors


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr(recipe, "load_for_training", refuse)
    monkeypatch.setattr("stellar_train.model.load_base", refuse)
    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", refuse)


def test_bogus_target_module_is_a_config_error(
    no_model_loads, tiny_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    config = make_config(tiny_model, tiny_corpus, tmp_path / "out", lora_target_modules="q_proj,qq_proj")
    with pytest.raises(ConfigError, match="qq_proj") as caught:
        recipe.train(config)
    assert "q_proj," not in str(caught.value)  # only the missing one is named
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"batch_size": 6, "micro_batch_size": 4}, "not divisible"),
        ({"precision": "fp8"}, "precision"),
        ({"batching": "sorted"}, "batching"),
        ({"template": "no-such-template"}, "template"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"micro_batch_size": 0}, "micro_batch_size"),
    ],
)
def test_config_errors_come_before_anything_loads(
    monkeypatch: pytest.MonkeyPatch, no_model_loads, tiny_model: Path, tiny_corpus: Path, tmp_path: Path,
    fields: dict[str, Any], message: str,
) -> None:  # fmt: skip
    def refuse(*args, **kwargs):
        raise AssertionError("the tokenizer was loaded before the config was checked")

    monkeypatch.setattr(recipe, "load_tokenizer", refuse)
    config = make_config(tiny_model, tiny_corpus, tmp_path / "out", **fields)
    with pytest.raises(ConfigError, match=message):
        recipe.train(config)
    assert not (tmp_path / "out").exists()


def test_batch_divisibility_counts_every_process(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, tmp_path: Path
) -> None:
    config = make_config(tiny_model, tmp_path, tmp_path / "out", batch_size=4, micro_batch_size=4)
    config.validate(world_size=1)
    with pytest.raises(ConfigError, match="x 2 process"):
        config.validate(world_size=2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="not divisible"):
        recipe.train(config)


def test_training_arguments_follow_the_config(tiny_model: Path, tmp_path: Path) -> None:
    """The real TrainingArguments are built (API drift shows here) with the config's values."""
    config = make_config(
        tiny_model, tmp_path, tmp_path / "out", batch_size=8, micro_batch_size=2, batching="group_by_length",
        learning_rate=2e-4, warmup_steps=5, seed=7, save_steps=3, eval_steps=4, validation_split="validation",
    )  # fmt: skip
    schedule = plan(config, examples=80, rows=80, tokens=1000)
    args = recipe.training_arguments(config, schedule, has_eval=True)
    assert args.per_device_train_batch_size == 2 and args.gradient_accumulation_steps == 4
    assert args.learning_rate == 2e-4 and args.warmup_steps == 5 and args.seed == 7
    assert not args.bf16 and not args.fp16
    assert args.eval_strategy == "steps" and args.eval_steps == 4
    assert args.save_strategy == "steps" and args.save_steps == 3
    assert recipe.training_arguments(config, schedule, has_eval=False).eval_strategy == "no"


def test_zero_save_and_eval_steps_turn_them_off_during_training(tiny_model: Path, tmp_path: Path) -> None:
    config = make_config(tiny_model, tmp_path, tmp_path / "out", save_steps=0, eval_steps=0)
    args = recipe.training_arguments(config, plan(config, examples=8, rows=8, tokens=100), has_eval=True)
    assert args.save_strategy == "no" and args.eval_strategy == "no"
