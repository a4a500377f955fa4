"""`stellar-train train CONFIG --dry-run`: validate, check, tokenize and plan with no model weights
loaded, print the schedule; every user error before that is one `error:` line, exit 2, no output
folder; `--dry-run` / `--force` are flags of the command, never config fields."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stellar_train.cli import app
from stellar_train.config import ConfigError, parse_overrides
from tests.conftest import ROOT

SHIPPED = ROOT / "corpus" / "train_stellarspeak.toml"
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import stellar_data

    out = tmp_path_factory.mktemp("dry_run") / "corpus"
    stellar_data.build(ROOT / "corpus" / "default.toml", out=out, workers=1)
    return out


@pytest.fixture(scope="module")
def tokenizer_only(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base_model folder with a tokenizer and no model (no config.json, no weights)."""
    folder = tmp_path_factory.mktemp("tokenizer_only")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model / name, folder / name)
    return folder


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded model weights")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", refuse)


def invoke(*args: str):
    return runner.invoke(app, ["train", *map(str, args)])


def schedule_of(stdout: str) -> dict[str, float]:
    lines = [line for line in stdout.splitlines() if line.startswith("schedule: ")]
    assert len(lines) == 1, stdout
    return {key: float(value) for key, value in (item.split("=") for item in lines[0].split()[1:])}


def alpaca_lora_steps(examples: int, batch_size: int, micro: int, epochs: float) -> int:
    """The Trainer's count for alpaca-lora's padded run: ceil(examples / micro) micro-batches an epoch,
    batch_size / micro of them a step."""
    return math.ceil(epochs * math.ceil(math.ceil(examples / micro) / (batch_size // micro)))


# The shipped config's 256 a step is 2 steps an epoch on the 300-example default corpus, shorter
# than its warmup. 64 a step is 12 packed rows a step (the tiny tokenizer fills a 2048-token row
# with about five examples): enough rows for the step to hold ~64 examples. A step of only a row or
# two cannot. The 124,687-example StellarSpeak corpus at 256 a step is in docs/BENCHMARKS.md.
SMALLER = ("--batch-size", "64", "--warmup-steps", "2", "--save-steps", "5", "--eval-steps", "5")


@pytest.mark.parametrize("batching", ["packed", "group_by_length"])
def test_the_shipped_config_plans_alpaca_loras_steps_packed_or_grouped(
    no_weights, corpus: Path, tokenizer_only: Path, tmp_path: Path, batching: str
) -> None:
    out = tmp_path / "adapter"
    args = ("--base-model", tokenizer_only, "--data", corpus, "--output-dir", out, "--batching", batching)
    result = invoke(SHIPPED, "--dry-run", *args, *SMALLER)
    assert result.exit_code == 0, result.output
    assert "note: base_model" in result.stdout and "tokenizer only" in result.stdout
    tokenization = json.loads(next(x for x in result.stdout.splitlines() if x.startswith("tokenization: "))[14:])
    kept = tokenization["train"]["kept"]
    assert kept > 100
    schedule = schedule_of(result.stdout)
    expected = alpaca_lora_steps(kept, batch_size=64, micro=4, epochs=3)
    assert schedule["optimizer_steps"] == pytest.approx(expected, rel=0.05)
    # alpaca-lora's steps hold 64 examples but the last of an epoch: the same average, packed or not.
    assert schedule["examples_per_step"] == pytest.approx(kept * 3 / expected, rel=0.05)
    assert schedule["warmup_steps"] == 2 and schedule["save_steps"] == schedule["eval_steps"] == 5
    if batching == "packed":
        assert tokenization["train_rows"] < kept / 3  # rows really hold several examples
    assert schedule["tokens_per_step"] > 0
    assert not out.exists()  # a dry run writes nothing


def test_the_shipped_config_on_a_small_corpus_names_the_interval_that_does_not_fit(
    no_weights, tiny_model: Path, corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapter"
    result = invoke(SHIPPED, "--base-model", tiny_model, "--data", corpus, "--output-dir", out, "--precision", "fp32")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: warmup_steps 100 exceeds the run's 6")
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--attn-implementation", "flash_attention_9"), "error: attn_implementation: 'flash_attention_9'"),
        (("--load-8bit", "--precision", "fp32"), "error: load_8bit: 8-bit loading needs a CUDA GPU"),
        (("--precision", "fp16"), "error: precision: fp16 needs a CUDA GPU"),
        (("--resume-from-checkpoint", "latest"), "has no complete checkpoint-N folder"),
        (("--report-to", "mlflow"), "error: report_to: unknown integration 'mlflow'"),
    ],
)
def test_user_errors_come_before_tokenizing_as_one_line(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, corpus: Path, tmp_path: Path, args, message: str
) -> None:
    def refuse(*a, **k):
        raise AssertionError("the tokenizer loaded before the checks")

    monkeypatch.setattr("stellar_train.recipe.load_tokenizer", refuse)
    out = tmp_path / "adapter"
    result = invoke(SHIPPED, "--base-model", tiny_model, "--data", corpus, "--output-dir", out, *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not out.exists()


def test_gpu_checks_are_notes_in_a_dry_run_without_a_gpu(
    no_weights, corpus: Path, tokenizer_only: Path, tmp_path: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine the checks run for real")
    args = ("--base-model", tokenizer_only, "--data", corpus, "--output-dir", tmp_path / "a", *SMALLER)
    result = invoke(SHIPPED, "--dry-run", *args, "--load-8bit", "--precision", "fp16")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: ")]
    assert any("fp16 needs a CUDA GPU (checked when run on a GPU)" in n for n in notes), notes
    assert any("8-bit loading needs a CUDA GPU" in n for n in notes), notes


def test_the_memory_estimate_is_a_note_when_the_model_config_is_there(
    no_weights, tiny_model: Path, corpus: Path, tmp_path: Path
) -> None:
    args = ("--base-model", tiny_model, "--data", corpus, "--output-dir", tmp_path / "a", *SMALLER)
    result = invoke(SHIPPED, "--dry-run", *args, "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert "note: memory: about" in result.stdout and "gradient_checkpointing=true" in result.stdout


def test_dry_run_and_force_are_flags_of_the_command_not_config_fields() -> None:
    for flag in ("--dry-run", "--force"):
        with pytest.raises(ConfigError, match=f"unknown option {flag}"):
            parse_overrides([flag])
