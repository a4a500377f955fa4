"""Shared by test_trainer.py and its torchrun worker: an eval set of very different lengths, the
Trainer's arguments, and the loss computed directly, one example at a time.

Run as `python -m torch.distributed.run ... -m tests.stellar_train.trainer_helpers MODEL OUT.json`: each
process evaluates with StellarTrainer; rank 0 writes the metrics."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from stellar_train.batching import collate_padded
from stellar_train.data import ExampleDataset
from stellar_train.tokenize import IGNORE_INDEX, Encoded

PAD = 0
LENGTHS = (4, 90, 6, 70, 5, 3, 120)
"""Eval batches of 2: (4, 90), (6, 70), (5, 3), (120): label tokens per batch 86, 68, 2, 117."""


def rows(lengths: tuple[int, ...] = LENGTHS, seed: int = 0) -> list[Encoded]:
    """Random ids (no pad, BOS 1 first); the first two labels masked as a prompt would be."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for length in lengths:
        ids = [1, *torch.randint(3, 300, (length - 1,), generator=generator).tolist()]
        out.append(Encoded(ids, [IGNORE_INDEX, IGNORE_INDEX, *ids[2:]]))
    return out


def dataset(lengths: tuple[int, ...] = LENGTHS, seed: int = 0) -> ExampleDataset:
    return ExampleDataset(rows(lengths, seed))


def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return collate_padded([f["row"] for f in features], PAD)


def arguments(output_dir: Path, **fields: Any):
    from transformers import TrainingArguments

    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "report_to": "none",
        "use_cpu": True,
        "remove_unused_columns": False,
        "label_names": ["labels"],
        "dataloader_num_workers": 0,
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    return TrainingArguments(**(values | fields))


def load_model(path: Path):
    """The tiny model with its LM head sharpened, so per-token losses vary a lot between examples."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    return model


def direct_loss(model: torch.nn.Module, examples: list[Encoded]) -> tuple[float, int]:
    """(sum of per-token losses / label tokens, label tokens): each example alone, unpadded, through the
    model's own loss (a per-token mean over its shifted labels), multiplied back by its token count."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for example in examples:
            labels = torch.tensor([example.labels])
            count = int(labels[:, 1:].ne(IGNORE_INDEX).sum())
            loss = model(input_ids=torch.tensor([example.input_ids]), labels=labels).loss
            total, tokens = total + float(loss) * count, tokens + count
    model.train(was_training)
    return total / tokens, tokens


def main(model_path: str, out: str) -> None:
    from stellar_train.trainer import StellarTrainer

    args = arguments(Path(out).parent / "ddp", ddp_backend="gloo")
    trainer = StellarTrainer(
        model=load_model(Path(model_path)), args=args, eval_dataset=dataset(), data_collator=collate
    )
    metrics = trainer.evaluate()
    if int(os.environ.get("RANK", "0")) == 0:
        Path(out).write_text(json.dumps(metrics), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
