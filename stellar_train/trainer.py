"""The project's Trainer: token-weighted evaluation loss, tokens/s in the logs, and experiment reporting.

`StellarTrainer.evaluate` (and `predict`) report the loss as the sum of per-token cross-entropy over
the whole evaluation set divided by its number of label tokens, gathered over all processes. The
stock Trainer reports a mean of per-batch means, which weights a token of a short batch more than a
token of a long one.

The causal shift is the model's own: logits at position t predict label t + 1 (`ForCausalLMLoss`
pads the labels with -100 on the right and shifts them left), positions labelled -100 count for
nothing, the logits are upcast to fp32, and a batch's `shift_labels` (padding-free collators) are
used as given. The sums are computed here from the logits, per example, rather than taken from the
model's loss: the model reduces over the batch, and per-example sums are what
`accelerator.gather_for_metrics` needs to drop the samples that the last uneven batch of a
distributed evaluation repeats. Label smoothing does not apply to this loss.

Reporting: integrations are attached as callbacks after `TokensPerSecondCallback`, so that the
tokens/s it adds to a log reaches TensorBoard / W&B (integrations named in
`TrainingArguments.report_to` would come before any callback passed to the Trainer, and write the
log before it is extended). recipe.py passes `**reporting_arguments()` to TrainingArguments
(report_to="none", non-pad token counting) and `callbacks=report_callbacks(config.report_to)`;
`checks.check_report_to` refuses a missing integration before anything is tokenized.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from .checks import check_report_to
from .tokenize import IGNORE_INDEX

log = logging.getLogger("stellar_train")


# ---------------------------------------------------------------------------------------------- evaluation


def token_loss_sums(
    logits: torch.Tensor, labels: torch.Tensor | None, shift_labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the summed cross-entropy of its label tokens and their number, with the causal
    shift of transformers' `ForCausalLMLoss` (logit t predicts label t + 1; or `shift_labels` as given)."""
    if shift_labels is None:
        logits, shift_labels = logits[:, :-1], labels[:, 1:]
    shift_labels = shift_labels.to(logits.device)
    token_loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="none",
    ).view(shift_labels.shape)  # fmt: skip
    return token_loss.sum(dim=1), shift_labels.ne(IGNORE_INDEX).sum(dim=1)


class StellarTrainer(Trainer):
    """A `transformers.Trainer` whose evaluation loss is token-weighted over the whole set (see the
    module docstring); everything else, including when and how evaluation runs, is the Trainer's.

    The metrics also carry `<prefix>_label_tokens`, the number of label tokens the loss averages over.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loss_sum: float | None = None
        self._label_tokens = 0

    def evaluation_loop(
        self,
        dataloader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ):
        self._loss_sum, self._label_tokens = None, 0
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if self._loss_sum is not None:  # the batches had labels
            tokens = self._label_tokens
            output.metrics[f"{metric_key_prefix}_loss"] = self._loss_sum / tokens if tokens else float("nan")
            output.metrics[f"{metric_key_prefix}_label_tokens"] = tokens
        return output

    def prediction_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ):
        # The logits are needed for the sums even when the caller wants the loss only.
        loss, logits, labels = super().prediction_step(model, inputs, False, ignore_keys)
        first = logits[0] if isinstance(logits, tuple | list) and logits else logits
        if isinstance(labels, torch.Tensor) and isinstance(first, torch.Tensor):
            sums, counts = token_loss_sums(first, labels, inputs.get("shift_labels"))
            sums, counts = self.accelerator.gather_for_metrics((sums, counts))  # drops repeated samples
            self._loss_sum = (self._loss_sum or 0.0) + float(sums.detach().cpu().double().sum())
            self._label_tokens += int(counts.sum().item())
        return (loss, None, None) if prediction_loss_only else (loss, logits, labels)


# ---------------------------------------------------------------------------------------------- reporting


class ReportToError(ValueError):
    """A `report_to` entry that is unknown or whose package is not installed."""


def reporting_arguments() -> dict[str, Any]:
    """`TrainingArguments` fields for reporting: integrations come as callbacks (`report_callbacks`),
    never through `report_to`, and the Trainer counts the non-pad input tokens it trains on."""
    return {"report_to": "none", "include_num_input_tokens_seen": "non_padding"}


def report_callbacks(report_to: Sequence[str]) -> list[TrainerCallback]:
    """The Trainer's `callbacks`: tokens/s first, then one callback per named integration.

    TensorBoard writes under `<output_dir>/runs/<date>_<host>` (or `$TENSORBOARD_LOGGING_DIR`); W&B reads
    its usual `WANDB_*` environment. Raises `ReportToError` for what `check_report_to` refuses."""
    problem = check_report_to(report_to)
    if problem:
        raise ReportToError(problem)
    from transformers.integrations import TensorBoardCallback, WandbCallback

    integrations = {"tensorboard": TensorBoardCallback, "wandb": WandbCallback}
    return [TokensPerSecondCallback(), *(integrations[name]() for name in report_to)]


class TokensPerSecondCallback(TrainerCallback):
    """Adds `tokens_per_second` to each training log (the logs with a `loss`): input tokens trained on
    since the previous training log (`state.num_input_tokens_seen`, summed over all processes) per
    second of wall time, less the evaluations' runtime in between. The value also goes into
    `state.log_history`.

    Needs `include_num_input_tokens_seen="non_padding"` (see `reporting_arguments`); the Trainer then
    counts `attention_mask.sum()` for padded batches. Batches without an attention mask (packed rows)
    are counted as `input_ids != processing_class.pad_token_id` when the Trainer has a
    `processing_class`, otherwise as every position, padding included. Must come before the
    integrations' callbacks, which write the log as it is when they see it.
    """

    def __init__(self) -> None:
        self._tokens = 0
        self._since: float | None = None
        self._excluded = 0.0
        self._warned = False

    def on_train_begin(self, args, state, control, **kwargs):
        self._tokens, self._since, self._excluded = state.num_input_tokens_seen, time.perf_counter(), 0.0
        if args.include_num_input_tokens_seen == "no" and not self._warned:
            log.warning("tokens_per_second needs include_num_input_tokens_seen='non_padding'; not logged")
            self._warned = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or self._since is None:
            return
        if "loss" not in logs:  # an evaluation's log (or the end-of-training summary)
            self._excluded += sum(v for k, v in logs.items() if k.endswith("_runtime") and not k.startswith("train"))
            return
        now = time.perf_counter()
        elapsed = now - self._since - self._excluded
        if args.include_num_input_tokens_seen != "no" and elapsed > 0:
            rate = (state.num_input_tokens_seen - self._tokens) / elapsed
            logs["tokens_per_second"] = rate
            last = state.log_history[-1] if state.log_history else {}
            if last.get("step") == state.global_step and last.get("loss") == logs["loss"]:
                last["tokens_per_second"] = rate
        self._tokens, self._since, self._excluded = state.num_input_tokens_seen, now, 0.0
