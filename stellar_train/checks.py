"""Checks that run before the model loads or the corpus is tokenized: one `error:` line each.

`preflight` looks at the config against the machine (`Devices`, probed once; tests pass their own
to simulate GPUs): bf16 where the GPU lacks it, fp16 or 8-bit without CUDA, bitsandbytes or
flash-attn not installed, an unknown attention implementation, several GPUs visible to one process
(the Trainer would wrap the model in DataParallel and silently multiply the batch), a `report_to`
integration that is not installed, `resume_from_checkpoint` with nothing to resume. In a dry run on
a machine without CUDA the checks that need a GPU are returned as notes instead of raised.

`check_resume` compares a resumed run with the record it continues: the config (minus RUN_ONLY
fields, which may change between sessions) and the corpus manifest must be unchanged.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig

REPORT_TO = ("tensorboard", "wandb")
"""The integrations a config may name in `report_to`."""
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}
FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}
RUN_ONLY = (
    *("output_dir", "resume_from_checkpoint", "logging_steps", "save_steps", "save_total_limit"),
    *("eval_steps", "validation_split", "report_to", "tokenized_cache_dir"),
    *("gradient_checkpointing", "attn_implementation"),
)
"""Fields a resumed run may change: they change how it runs, not what is trained (a checkpoint may
be resumed into another folder)."""


@dataclass(frozen=True)
class Devices:
    cuda: bool
    count: int
    """CUDA devices visible to this process."""
    bf16: bool
    """Every visible GPU supports bf16 (False without CUDA)."""
    world_size: int
    """Processes of the run (torchrun's WORLD_SIZE)."""
    launched: bool = False
    """Started by torchrun / accelerate (LOCAL_RANK set): each process drives one device."""


def probe() -> Devices:
    import torch

    cuda = torch.cuda.is_available()
    return Devices(
        cuda=cuda,
        count=torch.cuda.device_count() if cuda else 0,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        launched="LOCAL_RANK" in os.environ,
    )


def attention_implementations() -> list[str]:
    """Names transformers accepts for attn_implementation, including any registered by the user."""
    from transformers import AttentionInterface

    return sorted({"eager", *AttentionInterface().valid_keys()})


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_report_to(report_to: Sequence[str]) -> str | None:
    """Why `report_to` cannot be used (an unknown integration, or its package missing), or None.

    Cheap (no imports), so it can run before the data is tokenized."""
    if isinstance(report_to, str):
        return f"report_to: expected a list of integrations, got the string {report_to!r}"
    for name in report_to:
        if name not in REPORT_TO:
            return f"report_to: unknown integration {name!r} (allowed: {', '.join(REPORT_TO)})"
        if not any(installed(package) for package in _PACKAGES[name]):
            return f"report_to: {name} needs the {_PACKAGES[name][0]!r} package (pip install {_PACKAGES[name][0]})"
    if len(set(report_to)) != len(report_to):
        return f"report_to: an integration is named twice ({', '.join(report_to)})"
    return None


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The Trainer's complete checkpoint-N folders (with trainer_state.json) in output_dir, oldest first."""
    folder = Path(output_dir)
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    complete = [p for p in found if (p / "trainer_state.json").is_file()]
    return sorted(complete, key=lambda p: int(p.name.split("-")[-1]))


def resume_checkpoint(config: TrainConfig) -> str | None:
    """The checkpoint folder a run resumes from: `latest` is the newest complete one in output_dir."""
    resume = config.resume_from_checkpoint
    if resume != "latest":
        return resume
    found = checkpoints(config.output_dir)
    return str(found[-1]) if found else None


def preflight(config: TrainConfig, devices: Devices, *, dry_run: bool = False, force: bool = False) -> list[str]:
    """Raises ConfigError for the first problem; returns notes (GPU checks deferred in a dry run).
    `force`: a new run may write into an output_dir that holds another run's checkpoints."""
    notes: list[str] = []

    def needs_gpu(message: str) -> None:
        if dry_run and not devices.cuda:
            notes.append(f"{message} (checked when run on a GPU)")
        else:
            raise ConfigError(message)

    if config.precision == "bf16" and devices.cuda and not devices.bf16:
        raise ConfigError("precision: bf16 is not supported by this GPU; use fp16 (or fp32)")
    if config.precision == "fp16" and not devices.cuda:
        needs_gpu("precision: fp16 needs a CUDA GPU")
    if config.load_8bit:
        if not devices.cuda:
            needs_gpu("load_8bit: 8-bit loading needs a CUDA GPU")
        if not installed("bitsandbytes"):
            needs_gpu("load_8bit: bitsandbytes is not installed (pip install bitsandbytes)")
    known = attention_implementations()
    if config.attn_implementation not in known:
        raise ConfigError(f"attn_implementation: {config.attn_implementation!r} is not one of {', '.join(known)}")
    package = FLASH_PACKAGES.get(config.attn_implementation)
    if package and not installed(package):
        needs_gpu(f"attn_implementation: {config.attn_implementation} needs the {package} package, not installed")
    if devices.count > 1 and not devices.launched:
        needs_gpu(
            f"{devices.count} GPUs are visible to one process, which would multiply the batch through "
            f"DataParallel: run `torchrun --nproc_per_node {devices.count} -m stellar_train.cli train ...` "
            "(or accelerate launch), or pick one GPU with CUDA_VISIBLE_DEVICES=0"
        )
    if problem := check_report_to(config.report_to):
        raise ConfigError(problem)
    resume = config.resume_from_checkpoint
    if resume == "latest" and not checkpoints(config.output_dir):
        raise ConfigError(
            f"resume_from_checkpoint: latest, but {config.output_dir} has no complete checkpoint-N folder"
        )
    if resume not in (None, "latest") and not (Path(resume) / "trainer_state.json").is_file():
        raise ConfigError(f"resume_from_checkpoint: {resume} is not a Trainer checkpoint (no trainer_state.json)")
    if resume is None and checkpoints(config.output_dir) and not force:
        raise ConfigError(
            f"output_dir {config.output_dir} holds checkpoints of an earlier run: resume it "
            "(--resume-from-checkpoint latest), pick another output_dir, or pass --force"
        )
    return notes


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The fields that decide what is trained, as JSON holds them (tuples read back as lists). A
    record of an older version is read as a config first: fields it lacks get today's defaults and
    its relative paths are resolved from here."""
    from .config import from_mapping
    from .run_record import resolved_config

    with contextlib.suppress(ConfigError, TypeError):  # a record of a newer version: compared as it is
        config = resolved_config(from_mapping(config, "the run record"))
    return {name: value for name, value in json.loads(json.dumps(config)).items() if name not in RUN_ONLY}


def check_resume(run: dict[str, Any], previous: dict[str, Any], *, force: bool = False) -> list[str]:
    """The differences between a resumed run's record and the one it continues, as `field: old -> new`;
    raises ConfigError naming them unless `force`."""
    old, new = comparable(previous.get("config", {})), comparable(run["config"])
    changes = [f"{name}: {old.get(name)!r} -> {new.get(name)!r}" for name in sorted(old.keys() | new.keys())
               if old.get(name) != new.get(name)]  # fmt: skip
    if previous.get("corpus_manifest_sha256") != run.get("corpus_manifest_sha256"):
        changes.append("the corpus manifest changed")
    if changes and not force:
        raise ConfigError(
            f"resume_from_checkpoint: the run being resumed was trained differently "
            f"({'; '.join(changes)}); pass --force to resume anyway"
        )
    return changes
