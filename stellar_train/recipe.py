"""The LoRA SFT recipe: config -> checks -> data -> schedule -> model -> Trainer -> adapter + run record.

`prepare` does everything that needs no model weights, in order, each failure one ConfigError /
DataError: validate the config, the machine checks (`checks.preflight`), compare a resume with the
run it continues, load the tokenizer, check the LoRA targets on a meta-device model, encode the data
(cutoff outcomes counted, from the tokenized cache when there), build the rows (padded examples or
packed rows), plan the schedule and check its intervals. A dry run stops there and prints the plan.
`train` then loads the model with LoRA, builds the Trainer, saves the run record, trains with exact
gradient accumulation and saves the adapter, the tokenizer and `train_config.json` (run_record.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import run_record
from .batching import Packed, collate_flat, collate_packed, collate_padded, flattens, pack
from .cache import config_key, encoded_split, resolve_cache_dir, tokenizer_identity
from .checks import Devices, check_resume, preflight, probe, resume_checkpoint
from .config import TrainConfig, check_target_modules
from .data import DataError, ExampleDataset, corpus_manifest_sha256, encode_records, load_records
from .memory import GIB, Shape, estimate_peak_bytes
from .model import (
    batch_text_tokenizer,
    load_for_training,
    load_tokenizer,
    module_names,
    special_ids,
    text_tokenizer,
)
from .prompt import PromptTemplate
from .schedule import Schedule, check, plan
from .tokenize import Encoded
from .trainer import StellarTrainer, report_callbacks, reporting_arguments

RUN_CONFIG = run_record.RUN_CONFIG
log = logging.getLogger("stellar_train")


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    run: dict[str, Any]


@dataclass(frozen=True)
class Resume:
    """A resumed run: the checkpoint folder, the record it continues (None: none found) and what
    changed since (only with --force)."""

    checkpoint: str
    previous: dict[str, Any] | None
    own: bool
    """The previous record is output_dir's own (not another run's, beside a foreign checkpoint)."""
    changes: list[str]


def check_resumed(config: TrainConfig, force: bool) -> Resume | None:
    """Compares a resume with the run it continues before anything is tokenized (checks.check_resume)."""
    checkpoint = resume_checkpoint(config)
    if checkpoint is None:
        return None
    own = run_record.load(Path(config.output_dir))
    previous = own if own is not None else (run_record.read_run_config(checkpoint) or None)
    changes: list[str] = []
    if previous is not None:
        now = {
            "config": run_record.resolved_config(config),
            "corpus_manifest_sha256": corpus_manifest_sha256(config.data),
        }
        changes = check_resume(now, previous, force=force)
    return Resume(checkpoint, previous, own is not None, changes)


@dataclass(frozen=True)
class Prepared:
    """What a run needs before its model loads."""

    template: PromptTemplate
    tokenizer: Any
    rows: list[Encoded] | list[Packed]
    eval_rows: list[Encoded]
    tokenization: dict[str, Any]
    schedule: Schedule
    notes: list[str] = field(default_factory=list)
    resume: Resume | None = None


def training_arguments(config: TrainConfig, schedule: Schedule, has_eval: bool):
    """The real TrainingArguments for a config and its schedule (built in a CPU test so API drift is caught)."""
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    distributed = schedule.world_size > 1
    evaluate_during = has_eval and schedule.eval_steps > 0
    return TrainingArguments(
        output_dir=config.output_dir,
        per_device_train_batch_size=schedule.micro_batch_rows,
        per_device_eval_batch_size=config.micro_batch_size,
        gradient_accumulation_steps=schedule.gradient_accumulation_steps,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        bf16=config.precision == "bf16",
        fp16=config.precision == "fp16",
        logging_steps=config.logging_steps,
        eval_strategy="steps" if evaluate_during else "no",
        eval_steps=schedule.eval_steps if evaluate_during else None,
        save_strategy="steps" if schedule.save_steps > 0 else "no",
        save_steps=schedule.save_steps if schedule.save_steps > 0 else 500,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length" if config.batching == "group_by_length" else "random",
        remove_unused_columns=False,
        label_names=["labels"],
        **reporting_arguments(),
        dataloader_num_workers=0,
        use_cpu=not cuda,
        ddp_backend="gloo" if distributed and not cuda else None,
        ddp_find_unused_parameters=False if distributed else None,
    )


class Collator:
    """Builds tensors from the dataset's rows: packed rows (side by side, or flattened for a varlen
    kernel: `batching.flattens`), or padded examples (evaluation always)."""

    def __init__(self, pad_id: int, flat: bool) -> None:
        self.pad_id = pad_id
        self.flat = flat

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [f["row"] for f in features]
        if not isinstance(rows[0], Packed):
            return collate_padded(rows, self.pad_id)
        return collate_flat(rows) if self.flat else collate_packed(rows, self.pad_id)


def _memory_note(config: TrainConfig, schedule: Schedule) -> str | None:
    from transformers import AutoConfig

    try:
        shape = Shape.of(AutoConfig.from_pretrained(config.base_model))
    except (OSError, ValueError, AttributeError):
        return None
    width = config.pack_len if config.batching == "packed" else config.cutoff_len
    tokens = schedule.micro_batch_rows * width
    adapted = len(config.lora_target_modules) if tuple(config.lora_target_modules) != ("all-linear",) else 7
    estimate = estimate_peak_bytes(
        shape, tokens, adapted=adapted, lora_r=config.lora_r, load_8bit=config.load_8bit,
        checkpointing=config.gradient_checkpointing,
    )  # fmt: skip
    return (
        f"memory: about {estimate / GIB:.1f} GiB per GPU at {tokens} tokens a micro-batch "
        f"(gradient_checkpointing={str(config.gradient_checkpointing).lower()}; an estimate, see memory.py)"
    )


def prepare(config: TrainConfig, devices: Devices, *, dry_run: bool = False, force: bool = False) -> Prepared:
    """Validate, check, tokenize and plan; no model weights are loaded and nothing is written but
    the tokenized cache."""
    config.validate(devices.world_size, need_model=not dry_run)
    notes = preflight(config, devices, dry_run=dry_run, force=force)
    resume = check_resumed(config, force)
    template = PromptTemplate.load(config.template)
    tokenizer = load_tokenizer(config.base_model)
    has_model = not Path(config.base_model).expanduser().is_dir() or (Path(config.base_model) / "config.json").is_file()
    if has_model:
        check_target_modules(config, module_names(config.base_model))
    else:
        notes.append(f"base_model {config.base_model} is a tokenizer only: LoRA targets and memory not checked")
    ids = special_ids(tokenizer)
    cache_dir = resolve_cache_dir(config.tokenized_cache_dir)
    tokenizer_id = tokenizer_identity(config.base_model, tokenizer) if cache_dir is not None else ""

    def encoded(split: str) -> tuple[list[Encoded], dict[str, int] | None]:
        """The split's examples and cutoff outcomes (None: no such split), from the cache when there."""

        def build() -> tuple[list[Encoded], dict[str, Any]]:
            records = load_records(config.data, split)
            if records is None:
                return [], {"missing": True}
            examples, stats = encode_records(
                records, text_tokenizer(tokenizer), ids, template, config.cutoff_len, config.cutoff_policy,
                config.train_on_inputs, batch_text_tokenizer(tokenizer),
                min_instruction_share=config.min_instruction_share,
            )  # fmt: skip
            return examples, stats.as_dict()

        key = config_key(config, tokenizer_id, template, split) if cache_dir is not None else None
        waits = devices.world_size > 1 and cache_dir is not None and key is not None
        if waits and not is_local_main_process():
            wait_for(key.path(cache_dir), split)
        examples, stats, _ = encoded_split(cache_dir, key, build)
        if waits and is_local_main_process() and not key.path(cache_dir).is_file():
            raise DataError(f"tokenized_cache_dir {cache_dir}: cannot write the {split} split for the other processes")
        return examples, None if stats.get("missing") else stats

    train_examples, train_stats = encoded("train")
    if not train_stats or not train_stats["total"]:
        raise DataError(f"data {config.data}: no train split (or it is empty)")
    if not train_examples:
        raise DataError(f"data {config.data}: every train example was dropped ({train_stats})")
    rows = pack(train_examples, config.pack_len) if config.batching == "packed" else train_examples
    tokenization: dict[str, Any] = {"train": train_stats, "train_rows": len(rows)}
    eval_rows: list[Encoded] = []
    if config.validation_split:
        eval_rows, eval_stats = encoded(config.validation_split)
        if eval_stats is not None:
            tokenization["validation"] = eval_stats
    tokens = sum(map(len, train_examples))
    schedule = plan(config, len(train_examples), len(rows), tokens, devices.world_size, evaluates=bool(eval_rows))
    check(schedule)
    log.info("tokenized train: %s -> %d rows (%s batching)", train_stats, len(rows), config.batching)
    if config.batching == "packed":
        per_step = schedule.micro_batch_rows * schedule.gradient_accumulation_steps * schedule.world_size
        held = per_step * len(train_examples) / len(rows)
        if abs(held - config.batch_size) > 0.05 * config.batch_size:
            notes.append(
                f"packed: a step of {per_step} row(s) holds about {held:.0f} examples, not batch_size "
                f"{config.batch_size} (a row holds {len(train_examples) / len(rows):.1f}): lower pack_len or "
                "raise batch_size"
            )
    if has_model and (note := _memory_note(config, schedule)):
        notes.append(note)
    return Prepared(template, tokenizer, rows, eval_rows, tokenization, schedule, notes, resume)


def is_local_main_process() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def wait_for(path: Path, split: str, poll_s: float = 1.0) -> None:
    """Under torchrun each node's first process tokenizes and writes the cache; the others wait for
    its file (no process group needed, so no collective timeout while a large corpus is tokenized;
    if that process fails, torchrun stops them)."""
    if not path.is_file():
        log.info("waiting for the main process to tokenize %s", split)
    while not path.is_file():
        time.sleep(poll_s)


def dry_run(config: TrainConfig, devices: Devices | None = None, *, force: bool = False) -> Prepared:
    """`stellar-train train CONFIG --dry-run`: everything up to the model, printed by the CLI."""
    return prepare(config, devices or probe(), dry_run=True, force=force)


def _record(run: dict[str, Any], resume: Resume | None) -> dict[str, Any]:
    """The record a run saves: its own; resuming, the one it continues (output_dir's) with a
    `resumes` entry, or this run's when --force resumed a run trained differently (the earlier
    record is kept in the entry)."""
    if resume is None:
        return run
    kept = resume.previous if resume.own and resume.previous is not None and not resume.changes else run
    entry = {"checkpoint": resume.checkpoint, "config": run["config"], "changes": resume.changes}
    if resume.changes and resume.previous is not None:
        entry["previous"] = {k: v for k, v in resume.previous.items() if k not in ("log_history", "resumes")}
    history = resume.previous.get("resumes", []) if resume.previous else []
    return {**kept, "resumes": [*history, entry]}


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train(config: TrainConfig, *, force: bool = False) -> TrainResult:
    """Train a LoRA adapter as the config says; returns the final metrics and the run record."""
    prepared = prepare(config, probe(), force=force)
    for note in prepared.notes:
        log.info("%s", note)
    schedule = prepared.schedule
    output_dir = Path(config.output_dir)
    run = _record(run_record.run_record(config, prepared.template, schedule, prepared.tokenization), prepared.resume)

    from transformers import set_seed

    set_seed(config.seed)
    model = load_for_training(config)
    ids = special_ids(prepared.tokenizer)
    trainer = StellarTrainer(
        model=model,
        args=training_arguments(config, schedule, has_eval=bool(prepared.eval_rows)),
        train_dataset=ExampleDataset(prepared.rows),
        eval_dataset=ExampleDataset(prepared.eval_rows) if prepared.eval_rows else None,
        data_collator=Collator(ids.pad, flattens(config.attn_implementation)),
        callbacks=report_callbacks(config.report_to),
        processing_class=prepared.tokenizer,  # counts non-pad input tokens for tokens/s
    )
    if is_main_process():  # only once the model and the Trainer stand: a failed start leaves no record
        run_record.save(output_dir, run)
    outcome = trainer.train(resume_from_checkpoint=prepared.resume.checkpoint if prepared.resume else None)
    metrics = dict(outcome.metrics)
    if metrics.get("train_runtime"):  # the Trainer's samples are packed rows when packing; examples are these
        examples = schedule.examples_per_step * trainer.state.global_step
        metrics["train_examples_per_second"] = round(examples / metrics["train_runtime"], 3)
    if prepared.eval_rows:
        metrics |= _final_evaluation(trainer)
    if trainer.is_world_process_zero():
        model.save_pretrained(output_dir)
        prepared.tokenizer.save_pretrained(output_dir)
        run["metrics"] = metrics
        run["log_history"] = trainer.state.log_history
        run_record.save(output_dir, run)
    return TrainResult(output_dir, metrics, run)


def _final_evaluation(trainer) -> dict[str, Any]:
    """The evaluation of the final weights: the Trainer's own at the last step when it made one,
    else one more pass."""
    evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    if evaluations and evaluations[-1].get("step") == trainer.state.global_step:
        return {name: value for name, value in evaluations[-1].items() if name.startswith("eval_")}
    return trainer.evaluate()
