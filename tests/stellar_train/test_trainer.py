"""StellarTrainer on the tiny LLaMA (CPU, fp32): the evaluation loss is token-weighted over the whole set
(the stock Trainer's mean of per-batch means is not), during and after training and over two processes;
tokens/s and the losses reach TensorBoard; `report_to` is checked before anything loads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import Trainer, TrainerCallback

from stellar_train import checks as checks_module
from stellar_train.checks import check_report_to
from stellar_train.trainer import (
    ReportToError,
    StellarTrainer,
    TokensPerSecondCallback,
    report_callbacks,
    reporting_arguments,
    token_loss_sums,
)
from tests.conftest import ROOT

from .trainer_helpers import LENGTHS, arguments, collate, dataset, direct_loss, load_model, rows


class Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.evaluated: list[dict[str, float]] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evaluated.append(dict(metrics))


def test_eval_loss_is_token_weighted_and_the_stock_mean_of_batch_means_is_not(tiny_model: Path, tmp_path: Path) -> None:
    model = load_model(tiny_model)
    expected, tokens = direct_loss(model, rows())
    recorder = Recorder()
    trainer = StellarTrainer(
        model=model, args=arguments(tmp_path), eval_dataset=dataset(), data_collator=collate, callbacks=[recorder]
    )
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(expected, abs=1e-5, rel=0)
    assert metrics["eval_label_tokens"] == tokens == sum(n - 2 for n in LENGTHS)
    assert {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second"} <= metrics.keys()
    assert recorder.evaluated == [metrics]
    assert trainer.state.log_history[-1]["eval_loss"] == metrics["eval_loss"]

    prefixed = trainer.evaluate(metric_key_prefix="holdout")
    assert prefixed["holdout_loss"] == pytest.approx(expected, abs=1e-5, rel=0) and "holdout_runtime" in prefixed
    assert trainer.predict(dataset()).metrics["test_loss"] == pytest.approx(expected, abs=1e-5, rel=0)

    # The stock Trainer averages per-batch means: the 2-token batch (5, 3) weighs as much as the 117-token one.
    stock = Trainer(model=model, args=arguments(tmp_path), eval_dataset=dataset(), data_collator=collate).evaluate()
    assert abs(stock["eval_loss"] - expected) > 1e-2, (stock["eval_loss"], expected)


def test_token_loss_sums_match_the_models_own_loss(tiny_model: Path) -> None:
    """Padded batch, per-example sums, against the model's loss with num_items_in_batch (its sum / count)."""
    model = load_model(tiny_model).eval()
    batch = collate([{"row": r} for r in rows((5, 30, 12))])
    with torch.no_grad():
        out = model(**batch)
        sums, counts = token_loss_sums(out.logits, batch["labels"])
        count = batch["labels"][:, 1:].ne(-100).sum()
        model_loss = model(**batch, num_items_in_batch=count).loss
        shifted = token_loss_sums(
            out.logits, None, shift_labels=torch.nn.functional.pad(batch["labels"], (0, 1), value=-100)[:, 1:]
        )
    assert counts.tolist() == [3, 28, 10]
    torch.testing.assert_close(sums.sum() / counts.sum(), model_loss, atol=1e-5, rtol=0)
    torch.testing.assert_close(shifted[0], sums)
    torch.testing.assert_close(shifted[1], counts)


def test_evaluation_during_training_is_token_weighted(tiny_model: Path, tmp_path: Path) -> None:
    """eval_strategy="steps" with LoRA: the Trainer's own evaluations use the token-weighted loss; the one
    after the last step equals the direct computation on the trained model, and so does evaluate() after."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        load_model(tiny_model), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    )
    args = arguments(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=1, logging_steps=1, learning_rate=1e-2)
    trainer = StellarTrainer(
        model=model, args=args, train_dataset=dataset(seed=1), eval_dataset=dataset(), data_collator=collate
    )
    trainer.train()
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    assert [e["step"] for e in evals] == [1, 2]
    expected, tokens = direct_loss(model, rows())
    assert evals[-1]["eval_loss"] == pytest.approx(expected, abs=1e-5, rel=0)
    assert evals[-1]["eval_label_tokens"] == tokens
    assert evals[0]["eval_loss"] != pytest.approx(evals[1]["eval_loss"], abs=1e-4)  # the model did change
    assert trainer.evaluate()["eval_loss"] == pytest.approx(expected, abs=1e-5, rel=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_eval_loss_over_two_processes(tiny_model: Path, tmp_path: Path) -> None:
    """gloo, 2 processes x batch 2 over 7 examples: the last step repeats an example to even the batches;
    gather_for_metrics drops it, so the loss is the one-process direct loss."""
    out = tmp_path / "metrics.json"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT")}
    env |= {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "tests.stellar_train.trainer_helpers", str(tiny_model), str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-6000:]
    metrics = json.loads(out.read_text(encoding="utf-8"))
    expected, tokens = direct_loss(load_model(tiny_model), rows())
    assert metrics["eval_label_tokens"] == tokens
    assert metrics["eval_loss"] == pytest.approx(expected, abs=1e-5, rel=0)


# ---------------------------------------------------------------------------------------------- reporting


def test_tensorboard_gets_losses_learning_rate_and_tokens_per_second(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_rows = rows((5, 40, 9, 33, 17, 60, 8, 21), seed=2)
    args = arguments(
        tmp_path, max_steps=4, logging_steps=1, eval_strategy="steps", eval_steps=2, learning_rate=1e-3,
        **reporting_arguments(),
    )  # fmt: skip
    callbacks = report_callbacks(("tensorboard",))
    assert isinstance(callbacks[0], TokensPerSecondCallback)
    trainer = StellarTrainer(
        model=load_model(tiny_model), args=args, train_dataset=dataset(tuple(map(len, train_rows)), seed=2),
        eval_dataset=dataset(), data_collator=collate, callbacks=callbacks,
    )  # fmt: skip
    trainer.train()

    # 4 steps x 2 = the 8 training examples once: the count is their real tokens, padding excluded.
    assert trainer.state.num_input_tokens_seen == sum(len(r) for r in train_rows)
    train_logs = [e for e in trainer.state.log_history if "loss" in e]
    assert len(train_logs) == 4 and all(e["tokens_per_second"] > 0 for e in train_logs)

    event_files = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert len(event_files) == 1
    events = EventAccumulator(str(event_files[0].parent))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/tokens_per_second", "eval/loss"} <= tags, tags
    assert [s.step for s in events.Scalars("train/tokens_per_second")] == [1, 2, 3, 4]
    assert [s.step for s in events.Scalars("eval/loss")] == [2, 4]
    logged_eval = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    assert [s.value for s in events.Scalars("eval/loss")] == pytest.approx(logged_eval, rel=1e-6)


def test_check_report_to(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_report_to(()) is None
    assert "unknown integration 'mlflow'" in check_report_to(("mlflow",))
    assert "list of integrations" in check_report_to("tensorboard")
    monkeypatch.setattr(checks_module, "installed", lambda package: package == "tensorboard")
    assert check_report_to(("tensorboard",)) is None
    assert "twice" in check_report_to(("tensorboard", "tensorboard"))
    problem = check_report_to(("tensorboard", "wandb"))
    assert problem is not None and "'wandb' package" in problem
    with pytest.raises(ReportToError, match="wandb"):
        report_callbacks(("wandb",))
    monkeypatch.setattr(checks_module, "installed", lambda package: False)
    assert "'tensorboard' package" in check_report_to(("tensorboard",))


def test_reporting_arguments_build_real_training_arguments(tmp_path: Path) -> None:
    args = arguments(tmp_path, **reporting_arguments())
    assert args.report_to in ([], "none", ["none"]) and args.include_num_input_tokens_seen == "non_padding"
    assert [type(c).__name__ for c in report_callbacks(())] == ["TokensPerSecondCallback"]
