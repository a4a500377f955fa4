"""The training config: one frozen dataclass, validated before any model loads, saved with the outputs.

Loaded from TOML or YAML; every field can be overridden on the command line
(`--learning-rate 2e-4`, `--lora-target-modules all-linear`). Defaults are StellarSpeak's: LoRA r 8,
alpha 16, dropout 0.05 on q/k/v/o, batch 256, lr 1e-4, 3 epochs, the StellarSpeak template.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .prompt import PromptTemplate, TemplateError
from .tokenize import CUTOFF_POLICIES

PRECISIONS = ("bf16", "fp16", "fp32")
BATCHING = ("random", "group_by_length", "packed")


class ConfigError(ValueError):
    """An invalid training config; the message names the field."""


@dataclass(frozen=True)
class TrainConfig:
    base_model: str
    """A local model folder or a Hub id (LLaMA architecture)."""
    data: str
    """A built corpus folder (its train / validation shards) or anything `datasets.load_dataset` opens."""
    output_dir: str
    template: str = "stellarspeak"
    """A shipped template (`stellarspeak`, `alpaca`) or a JSON file in alpaca-lora's format."""
    validation_split: str = "validation"
    """The split evaluated during training; "" for none."""

    cutoff_len: int = 512
    cutoff_policy: str = "truncate_prompt"
    min_instruction_share: float = 0.5
    """truncate_prompt never cuts an instruction below this share of its characters (else the example
    is dropped); 1 never cuts it, 0 may cut it to one character."""
    train_on_inputs: bool = False
    batching: str = "group_by_length"
    """random, group_by_length (as alpaca-lora), or packed (padding-free, no attention across examples)."""
    pack_len: int = 2048
    """Tokens per packed row (>= cutoff_len). Longer rows than the cutoff let short and long examples
    share rows (97%+ real tokens); attention never crosses examples either way."""

    batch_size: int = 256
    """Examples per optimizer step, over all processes, whatever the batching (see schedule.py)."""
    micro_batch_size: int = 4
    """Examples (packed rows when packing, at most) per forward pass per process; gradient
    accumulation makes up the rest."""
    num_epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float = 1e-4
    warmup_steps: int = 100
    """At most the run's optimizer steps (a dry run prints them)."""
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    seed: int = 42

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Module name suffixes, or ("all-linear",)."""

    precision: str = "bf16"
    load_8bit: bool = False
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    """eager, sdpa, flash_attention_2, ... or a name registered with transformers' AttentionInterface."""

    logging_steps: int = 10
    eval_steps: int = 200
    """Evaluate every N optimizer steps (and at the end); 0: only at the end."""
    save_steps: int = 200
    """Save a resumable checkpoint every N optimizer steps; 0: none (the adapter is saved at the end)."""
    save_total_limit: int = 3
    resume_from_checkpoint: str | None = None
    """A checkpoint folder, or "latest" for the newest one in output_dir."""
    report_to: tuple[str, ...] = ()
    """Logging integrations: tensorboard, wandb (train / eval loss, learning rate, tokens/s)."""
    tokenized_cache_dir: str = ""
    """Where tokenized splits are cached (keyed by corpus, tokenizer and encoding settings): "" for
    $STELLAR_TRAIN_CACHE or ~/.cache/stellar_train/tokenized, "none" to tokenize every time."""

    def validate(self, world_size: int | None = None, *, need_model: bool = True) -> None:
        """Everything that can be checked without loading a model (see also `check_target_modules` and
        `checks.preflight`). `need_model=False` (a dry run) accepts a tokenizer-only base_model folder."""
        world_size = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", "1"))
        positive = (
            "cutoff_len",
            "batch_size",
            "micro_batch_size",
            "lora_r",
            "lora_alpha",
            "logging_steps",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be > 0, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_steps", "save_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.min_instruction_share <= 1:
            raise ConfigError(f"min_instruction_share: must be in [0, 1], got {self.min_instruction_share}")
        if self.learning_rate <= 0 or self.num_epochs <= 0:
            raise ConfigError("learning_rate and num_epochs must be > 0")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout: must be in [0, 1), got {self.lora_dropout}")
        if self.batching == "packed" and self.pack_len < self.cutoff_len:
            raise ConfigError(f"pack_len {self.pack_len} is shorter than cutoff_len {self.cutoff_len}")
        from transformers import SchedulerType

        schedulers = tuple(kind.value for kind in SchedulerType)
        if self.lr_scheduler not in schedulers:
            raise ConfigError(f"lr_scheduler: {self.lr_scheduler!r} is not one of {', '.join(schedulers)}")
        if self.batching != "packed" and self.batch_size % (self.micro_batch_size * world_size):
            raise ConfigError(
                f"batch_size {self.batch_size} is not divisible by micro_batch_size {self.micro_batch_size} "
                f"x {world_size} process(es): gradient accumulation could not be exact"
            )
        for name, allowed in (("precision", PRECISIONS), ("batching", BATCHING), ("cutoff_policy", CUTOFF_POLICIES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules: name at least one module (or all-linear)")
        local = self.base_model.startswith(("/", "./", "../", "~")) or Path(self.base_model).exists()
        folder = Path(self.base_model).expanduser()
        if local and need_model and not (folder / "config.json").is_file():
            raise ConfigError(f"base_model {self.base_model}: no model folder there (config.json not found)")
        if local and not folder.is_dir():
            raise ConfigError(f"base_model {self.base_model}: no such folder")
        try:
            PromptTemplate.load(self.template)
        except TemplateError as exc:
            raise ConfigError(f"template: {exc}") from None


def check_target_modules(config: TrainConfig, module_names: list[str]) -> None:
    """Every target must be the suffix of some module of the model (checked on a meta-device model)."""
    if tuple(config.lora_target_modules) == ("all-linear",):
        return
    missing = [t for t in config.lora_target_modules if not any(n == t or n.endswith("." + t) for n in module_names)]
    if missing:
        raise ConfigError(f"lora_target_modules: {', '.join(missing)} not in the model {config.base_model}")


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """A value from TOML/YAML or the command line, as the field's type."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):  # `str | None`
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        origin = typing.get_origin(kind)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(i).strip() for i in items if str(i).strip())
        if kind is bool:
            if isinstance(value, int | float) and not isinstance(value, bool):
                raise ValueError(value)  # TOML `true` for a number, or a number for a flag, is a mistake
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot read {value!r} as {getattr(kind, '__name__', kind)}") from None


def from_mapping(values: dict[str, Any], origin: str = "config") -> TrainConfig:
    types_ = _field_types()
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ConfigError(f"{origin}: unknown field(s) {', '.join(unknown)}")
    required = [f.name for f in dataclasses.fields(TrainConfig) if f.default is dataclasses.MISSING]
    missing = [name for name in required if values.get(name) in (None, "")]
    if missing:
        raise ConfigError(f"{origin}: missing required field(s) {', '.join(missing)}")
    return TrainConfig(**{name: _coerce(name, value, types_[name]) for name, value in values.items()})


def load_config(path: str | Path, overrides: dict[str, Any] | None = None, *, need_model: bool = True) -> TrainConfig:
    """TOML or YAML (by extension), then command-line overrides; validated (see `TrainConfig.validate`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        values = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of fields")
    values = {**values, **(overrides or {})}
    config = from_mapping(values, str(path))
    config.validate(need_model=need_model)
    return config


def parse_overrides(args: list[str]) -> dict[str, str]:
    """`--learning-rate 2e-4 --load-8bit` / `--lora-r=16` -> {field: raw value}."""
    names = set(_field_types())
    overrides: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r} (fields are given as --name value)")
        key, equals, value = arg[2:].partition("=")
        name = key.replace("-", "_")
        if name not in names:
            raise ConfigError(f"unknown option --{key}")
        if not equals:
            nxt = args[index + 1] if index + 1 < len(args) else None
            if nxt is None or nxt.startswith("--"):
                value = "true"  # a bare flag
            else:
                value, index = nxt, index + 1
        overrides[name] = value
        index += 1
    return overrides
