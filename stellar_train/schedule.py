"""The run's schedule: how many rows a forward pass takes, gradient accumulation, optimizer steps.

`batch_size` counts examples per optimizer step, whatever the batching, so packed and padded runs of
one config take the same number of optimizer steps (within a few per cent) and see the same examples
per step on average; `warmup_steps`, `save_steps` and `eval_steps` then mean the same in both.

- random / group_by_length: a micro-batch is `micro_batch_size` examples and gradient accumulation
  makes up `batch_size` exactly (batch_size = micro x accumulation x processes).
- packed: a micro-batch is at most `micro_batch_size` packed rows (of about `examples / rows`
  examples each). Rows per micro-batch (m <= micro_batch_size) and accumulation (a) are chosen so
  that m x a x processes is the nearest to `batch_size / examples per row`: the largest m within
  ROWS_TOLERANCE of the target wins, else the closest. The steps are counted as the Trainer counts
  them: ceil(rows / m) micro-batches shared by the processes, ceil(per process / a) steps an epoch.

`check` refuses a warmup, save or eval interval longer than the run (the run would never checkpoint,
evaluate or leave warmup); 0 turns saving / evaluation during training off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ConfigError, TrainConfig

ROWS_TOLERANCE = 0.025
"""Largest relative gap between the packed rows a step takes and the rows that hold batch_size examples."""


@dataclass(frozen=True)
class Schedule:
    examples: int
    """Train examples after tokenization."""
    rows: int
    """What the data loader draws: examples, or packed rows."""
    tokens: int
    """Real (non-pad) train tokens."""
    world_size: int
    micro_batch_rows: int
    """Rows per forward pass per process (the Trainer's per-device batch size)."""
    gradient_accumulation_steps: int
    steps_per_epoch: int
    optimizer_steps: int
    warmup_steps: int
    save_steps: int
    eval_steps: int

    @property
    def examples_per_step(self) -> float:
        return self.examples / self.steps_per_epoch

    @property
    def tokens_per_step(self) -> float:
        return self.tokens / self.steps_per_epoch

    def as_dict(self) -> dict[str, int | float]:
        return {
            **{name: getattr(self, name) for name in self.__dataclass_fields__},
            "examples_per_step": round(self.examples_per_step, 2),
            "tokens_per_step": round(self.tokens_per_step, 1),
        }

    def line(self) -> str:
        """The one line a dry run prints."""
        return (
            f"schedule: optimizer_steps={self.optimizer_steps} warmup_steps={self.warmup_steps} "
            f"save_steps={self.save_steps} eval_steps={self.eval_steps} "
            f"examples_per_step={self.examples_per_step:.1f} tokens_per_step={self.tokens_per_step:.0f}"
        )


def micro_and_accumulation(config: TrainConfig, examples: int, rows: int, world_size: int) -> tuple[int, int]:
    """(rows per micro-batch, gradient accumulation steps) for the config's batching."""
    if config.batching != "packed":
        return config.micro_batch_size, config.batch_size // (config.micro_batch_size * world_size)
    target = config.batch_size * rows / examples / world_size  # rows per step per process
    best: tuple[float, int, int] | None = None
    for micro in range(config.micro_batch_size, 0, -1):
        accumulation = max(1, round(target / micro))
        gap = abs(micro * accumulation - target) / target
        if gap <= ROWS_TOLERANCE:
            return micro, accumulation
        if best is None or gap < best[0]:
            best = (gap, micro, accumulation)
    assert best is not None
    return best[1], best[2]


def plan(
    config: TrainConfig, examples: int, rows: int, tokens: int, world_size: int = 1, *, evaluates: bool | None = None
) -> Schedule:
    """`evaluates`: whether there is anything to evaluate (default: a validation split is named)."""
    if examples <= 0 or rows <= 0:
        raise ValueError("a schedule needs at least one example")
    micro, accumulation = micro_and_accumulation(config, examples, rows, world_size)
    per_process = math.ceil(math.ceil(rows / micro) / world_size)
    steps_per_epoch = max(math.ceil(per_process / accumulation), 1)
    steps = config.max_steps if config.max_steps > 0 else math.ceil(config.num_epochs * steps_per_epoch)
    return Schedule(
        examples=examples,
        rows=rows,
        tokens=tokens,
        world_size=world_size,
        micro_batch_rows=micro,
        gradient_accumulation_steps=accumulation,
        steps_per_epoch=steps_per_epoch,
        optimizer_steps=steps,
        warmup_steps=config.warmup_steps,
        save_steps=config.save_steps,
        eval_steps=config.eval_steps if (bool(config.validation_split) if evaluates is None else evaluates) else 0,
    )


def check(schedule: Schedule) -> None:
    """Every interval fits in the run; the message names the field."""
    for name in ("warmup_steps", "save_steps", "eval_steps"):
        value = getattr(schedule, name)
        if value > schedule.optimizer_steps:
            raise ConfigError(
                f"{name} {value} exceeds the run's {schedule.optimizer_steps} optimizer steps "
                f"({schedule.examples} examples, {schedule.examples_per_step:.0f} a step): "
                f"lower it{'' if name == 'warmup_steps' else ', or set 0 for none during training'}"
            )
