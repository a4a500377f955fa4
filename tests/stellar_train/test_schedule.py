"""The schedule: batch_size counts examples whatever the batching, so a packed run of a config takes
the optimizer steps its grouped run takes (alpaca-lora's count), and intervals must fit in the run."""

from __future__ import annotations

import math

import pytest

from stellar_train.config import ConfigError, from_mapping
from stellar_train.schedule import ROWS_TOLERANCE, check, micro_and_accumulation, plan

STELLARSPEAK = {"base_model": "hub/model", "data": "build/corpus", "output_dir": "out"}  # defaults: 256 / 4 / 3 epochs


def config(**fields):
    return from_mapping({**STELLARSPEAK, **fields})


def alpaca_lora_steps(examples: int, batch_size: int = 256, micro: int = 4, epochs: float = 3) -> int:
    """What the Trainer does for alpaca-lora's padded run: ceil(examples / micro) micro-batches an
    epoch, gradient accumulation batch_size / micro."""
    per_epoch = math.ceil(math.ceil(examples / micro) / (batch_size // micro))
    return math.ceil(epochs * per_epoch)


def test_grouped_run_counts_steps_as_the_trainer_does():
    schedule = plan(config(batching="group_by_length"), examples=124_687, rows=124_687, tokens=30_000_000)
    assert (schedule.micro_batch_rows, schedule.gradient_accumulation_steps) == (4, 64)
    assert schedule.optimizer_steps == alpaca_lora_steps(124_687) == 1464
    assert schedule.examples_per_step == pytest.approx(256, rel=0.01)


def test_a_packed_run_takes_the_steps_of_the_grouped_run():
    """The shipped config: ~8.5 examples a packed row. Counting rows as examples made 172 steps."""
    examples, rows = 124_687, 14_669
    packed = plan(config(batching="packed"), examples=examples, rows=rows, tokens=30_000_000)
    assert packed.optimizer_steps == pytest.approx(alpaca_lora_steps(examples), rel=0.05)
    assert packed.examples_per_step == pytest.approx(256, rel=0.05)
    assert packed.micro_batch_rows <= 4
    assert packed.warmup_steps / packed.optimizer_steps < 0.1  # warmup 100 is ~7% of the run, not 58%


@pytest.mark.parametrize("per_row", [1.0, 1.7, 3.2, 8.5, 13.0, 31.0])
@pytest.mark.parametrize(("batch_size", "micro", "world"), [(256, 4, 1), (128, 8, 1), (256, 4, 2), (512, 2, 4)])
def test_packed_and_grouped_steps_agree_within_5_percent(per_row, batch_size, micro, world):
    examples = 100_000
    rows = round(examples / per_row)
    fields = {"batch_size": batch_size, "micro_batch_size": micro}
    grouped = plan(config(batching="group_by_length", **fields), examples, examples, 10**7, world)
    packed = plan(config(batching="packed", **fields), examples, rows, 10**7, world)
    assert packed.optimizer_steps == pytest.approx(grouped.optimizer_steps, rel=0.05)
    assert packed.examples_per_step == pytest.approx(grouped.examples_per_step, rel=0.05)
    assert packed.micro_batch_rows <= micro


def test_packed_rows_per_step_prefer_the_largest_micro_batch_within_tolerance():
    # 256 examples a step at 8.5 a row is 30.1 rows: 4 x 8 = 32 is 6% off, 3 x 10 = 30 is 0.4% off.
    assert micro_and_accumulation(config(batching="packed"), examples=85_000, rows=10_000, world_size=1) == (3, 10)
    # 16 rows a step: 4 x 4 exactly.
    assert micro_and_accumulation(config(batching="packed"), examples=16_000, rows=1_000, world_size=1) == (4, 4)
    assert ROWS_TOLERANCE < 0.05


def test_max_steps_overrides_the_epochs():
    assert plan(config(max_steps=7), examples=10_000, rows=10_000, tokens=10**6).optimizer_steps == 7


def test_the_schedule_line_and_record():
    schedule = plan(config(batching="group_by_length"), examples=124_687, rows=124_687, tokens=31_171_750)
    assert schedule.line() == (
        "schedule: optimizer_steps=1464 warmup_steps=100 save_steps=200 eval_steps=200 "
        "examples_per_step=255.5 tokens_per_step=63877"
    )
    record = schedule.as_dict()
    assert record["optimizer_steps"] == 1464 and record["gradient_accumulation_steps"] == 64
    assert record["examples_per_step"] == 255.51 and record["tokens"] == 31_171_750


@pytest.mark.parametrize("field", ["warmup_steps", "save_steps", "eval_steps"])
def test_an_interval_longer_than_the_run_is_an_error_naming_it(field):
    # 1,000 examples at 256 a step: 4 steps an epoch, 12 in all.
    fields = {"warmup_steps": 0, "save_steps": 0, "eval_steps": 0, field: 13}
    schedule = plan(config(**fields), examples=1_000, rows=1_000, tokens=10**5)
    assert schedule.optimizer_steps == 12
    with pytest.raises(ConfigError, match=f"^{field} 13 exceeds the run's 12 optimizer steps"):
        check(schedule)


def test_intervals_that_fit_or_are_off_pass():
    check(plan(config(warmup_steps=12, save_steps=0, eval_steps=0), examples=1_000, rows=1_000, tokens=10**5))
    # Without a validation split nothing is evaluated during training: eval_steps does not apply.
    check(plan(config(warmup_steps=0, save_steps=6, validation_split=""), examples=1_000, rows=1_000, tokens=10**5))


def test_a_schedule_needs_examples():
    with pytest.raises(ValueError, match="at least one example"):
        plan(config(), examples=0, rows=0, tokens=0)


def test_no_evaluation_interval_when_there_is_nothing_to_evaluate():
    """A named validation split that is missing (or all dropped) evaluates nothing: eval_steps 200 must
    not fail a 12-step run."""
    schedule = plan(config(warmup_steps=0, save_steps=0), examples=1_000, rows=1_000, tokens=10**5, evaluates=False)
    assert schedule.eval_steps == 0
    check(schedule)
