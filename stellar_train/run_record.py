"""The run record, `train_config.json` beside the adapter: what was trained, on what, and how.

The config with its local paths resolved (so the record reads the same from any directory), the
schedule, the template, the base model's fingerprint, the corpus manifest's hash, package versions and
the tokenization outcomes; metrics and the log history are added when training ends, and each resume
is listed under `resumes`.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .data import corpus_manifest_sha256
from .model import base_fingerprint
from .prompt import PromptTemplate
from .schedule import Schedule

RUN_CONFIG = "train_config.json"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("stellar-speak", "torch", "transformers", "peft", "accelerate"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def resolved_config(config: TrainConfig) -> dict[str, Any]:
    """The config as a dict, `data`, `base_model` (when local) and `output_dir` as absolute paths."""
    values = dataclasses.asdict(config)
    for name in ("data", "base_model", "output_dir"):
        path = Path(values[name]).expanduser()
        if name == "output_dir" or path.exists():
            values[name] = str(path.resolve())
    return values


def run_record(
    config: TrainConfig, template: PromptTemplate, schedule: Schedule, tokenization: dict[str, Any]
) -> dict[str, Any]:
    resolved = resolved_config(config)
    return {
        "config": resolved,
        "world_size": schedule.world_size,
        "gradient_accumulation_steps": schedule.gradient_accumulation_steps,
        "schedule": schedule.as_dict(),
        "template": dataclasses.asdict(template),
        "base_model": {"path": resolved["base_model"], "fingerprint": base_fingerprint(config.base_model)},
        "corpus_manifest_sha256": corpus_manifest_sha256(config.data),
        "versions": versions(),
        "tokenization": tokenization,
    }


def save(output_dir: Path, run: dict[str, Any]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / RUN_CONFIG
    staging = path.with_name(f".{RUN_CONFIG}.tmp")
    staging.write_text(json.dumps(run, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    staging.replace(path)


def load(output_dir: Path) -> dict[str, Any] | None:
    """The record in exactly this folder (a run's own output_dir), or None."""
    path = output_dir / RUN_CONFIG
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def run_record_path(adapter: str) -> Path | None:
    """The run record (train_config.json) beside an adapter, or in its parent for a Trainer
    `checkpoint-N` folder; None when there is none."""
    for folder in (Path(adapter), Path(adapter).parent):
        path = folder / RUN_CONFIG
        if path.is_file():
            return path
    return None


def read_run_config(adapter: str) -> dict:
    """The adapter's run record (see run_record_path); {} when there is none."""
    path = run_record_path(adapter)
    return json.loads(path.read_text(encoding="utf-8")) if path else {}
