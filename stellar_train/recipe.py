"""The LoRA SFT recipe: config -> data -> model -> Trainer -> adapter + run record.

Steps in order, each small: validate the config (nothing loads before), load and prepare the
tokenizer, check the LoRA targets on a meta-device model, encode the data (cutoff counts kept),
build the batches (padded / length-grouped / packed), load the model with LoRA, train with exact
gradient accumulation, save the adapter, the tokenizer and `train_config.json` (the config, package
versions, the corpus manifest's hash, the base model's fingerprint, the tokenization counts).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .batching import Packed, collate_packed, collate_padded, pack
from .config import TrainConfig, check_target_modules
from .data import DataError, ExampleDataset, corpus_manifest_sha256, encode_records, load_records
from .model import (
    base_fingerprint,
    batch_text_tokenizer,
    load_for_training,
    load_tokenizer,
    module_names,
    special_ids,
    text_tokenizer,
)
from .prompt import PromptTemplate
from .tokenize import EncodeStats

RUN_CONFIG = "train_config.json"
log = logging.getLogger("stellar_train")


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    run: dict[str, Any]


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def training_arguments(config: TrainConfig, has_eval: bool):
    """The real TrainingArguments for a config (built in a CPU test so API drift is caught)."""
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.micro_batch_size,
        per_device_eval_batch_size=config.micro_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps(world_size()),
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        bf16=config.precision == "bf16",
        fp16=config.precision == "fp16",
        logging_steps=config.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length" if config.batching == "group_by_length" else "random",
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=[],
        dataloader_num_workers=0,
        use_cpu=not cuda,
        ddp_backend="gloo" if world_size() > 1 and not cuda else None,
        ddp_find_unused_parameters=False if world_size() > 1 else None,
    )


class Collator:
    """Builds tensors from the dataset's rows: packed rows, or padded examples (evaluation always)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [f["row"] for f in features]
        return collate_packed(rows) if isinstance(rows[0], Packed) else collate_padded(rows, self.pad_id)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("stellar-speak", "torch", "transformers", "peft", "accelerate"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_record(config: TrainConfig, template: PromptTemplate, tokenization: dict[str, Any]) -> dict[str, Any]:
    return {
        "config": dataclasses.asdict(config),
        "world_size": world_size(),
        "gradient_accumulation_steps": config.gradient_accumulation_steps(world_size()),
        "template": dataclasses.asdict(template),
        "base_model": {"path": config.base_model, "fingerprint": base_fingerprint(config.base_model)},
        "corpus_manifest_sha256": corpus_manifest_sha256(config.data),
        "versions": _versions(),
        "tokenization": tokenization,
    }


def _save_run(output_dir: Path, run: dict[str, Any]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RUN_CONFIG).write_text(json.dumps(run, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def train(config: TrainConfig) -> TrainResult:
    """Train a LoRA adapter as the config says; returns the final metrics and the run record."""
    config.validate(world_size())
    template = PromptTemplate.load(config.template)
    tokenizer = load_tokenizer(config.base_model)
    check_target_modules(config, module_names(config.base_model))
    ids = special_ids(tokenizer)
    tokenize, tokenize_batch = text_tokenizer(tokenizer), batch_text_tokenizer(tokenizer)

    train_records = load_records(config.data, "train")
    if not train_records:
        raise DataError(f"data {config.data}: no train split (or it is empty)")

    def encode_split(records: list[dict[str, str]]) -> tuple[list, EncodeStats]:
        return encode_records(
            records,
            tokenize,
            ids,
            template,
            config.cutoff_len,
            config.cutoff_policy,
            config.train_on_inputs,
            tokenize_batch,
        )

    encoded, train_stats = encode_split(train_records)
    if not encoded:
        raise DataError(f"data {config.data}: every train example was dropped ({train_stats.as_dict()})")
    rows = pack(encoded, config.pack_len) if config.batching == "packed" else encoded
    eval_rows, eval_stats = [], None
    if config.validation_split:
        eval_rows, eval_stats = encode_split(load_records(config.data, config.validation_split) or [])
    tokenization = {"train": train_stats.as_dict(), "train_rows": len(rows)}
    log.info("tokenized train: %s -> %d rows (%s batching)", train_stats.as_dict(), len(rows), config.batching)
    if eval_stats is not None:
        tokenization["validation"] = eval_stats.as_dict()
    output_dir = Path(config.output_dir)
    run = run_record(config, template, tokenization)
    _save_run(output_dir, run)

    from transformers import Trainer, set_seed

    set_seed(config.seed)
    model = load_for_training(config)
    trainer = Trainer(
        model=model,
        args=training_arguments(config, has_eval=bool(eval_rows)),
        train_dataset=ExampleDataset(rows),
        eval_dataset=ExampleDataset(eval_rows) if eval_rows else None,
        data_collator=Collator(ids.pad),
    )
    resume = config.resume_from_checkpoint
    outcome = trainer.train(resume_from_checkpoint=True if resume == "latest" else resume)
    metrics = dict(outcome.metrics)
    if eval_rows:
        metrics |= trainer.evaluate()
    if trainer.is_world_process_zero():
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
        run["metrics"] = metrics
        run["log_history"] = trainer.state.log_history
        _save_run(output_dir, run)
    return TrainResult(output_dir, metrics, run)
