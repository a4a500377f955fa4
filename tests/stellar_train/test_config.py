"""The training config: StellarSpeak defaults, TOML / YAML files with command-line overrides, every
validation error, LoRA target checks against the tiny model, and the real TrainingArguments /
LoraConfig built from a config (so API drift in transformers / peft fails here, on CPU)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stellar_train.config import (
    BATCHING,
    PRECISIONS,
    ConfigError,
    TrainConfig,
    check_target_modules,
    from_mapping,
    load_config,
    parse_overrides,
)
from stellar_train.schedule import plan
from stellar_train.tokenize import CUTOFF_POLICIES

REQUIRED = {"base_model": "models/llama", "data": "corpora/stellar", "output_dir": "runs/one"}

TOML = """\
base_model = "models/llama"
data = "corpora/stellar"
output_dir = "runs/one"
template = "alpaca"
cutoff_len = 256
batch_size = 64
micro_batch_size = 8
num_epochs = 2
learning_rate = 3e-4
lora_target_modules = ["q_proj", "v_proj"]
train_on_inputs = true
"""

YAML = """\
base_model: models/llama
data: corpora/stellar
output_dir: runs/one
template: alpaca
cutoff_len: 256
batch_size: 64
micro_batch_size: 8
num_epochs: 2
learning_rate: 3.0e-4
lora_target_modules: [q_proj, v_proj]
train_on_inputs: true
"""


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def config(**changes) -> TrainConfig:
    return TrainConfig(**{**REQUIRED, **changes})


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults -------------------------------------------------------------------------------------------


def test_stellarspeak_defaults():
    c = config()
    assert (c.lora_r, c.lora_alpha, c.lora_dropout) == (8, 16, 0.05)
    assert c.lora_target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert c.batch_size == 256
    assert c.learning_rate == 1e-4
    assert c.num_epochs == 3.0
    assert c.template == "stellarspeak"
    assert c.cutoff_policy == "truncate_prompt"
    assert c.train_on_inputs is False
    assert c.load_8bit is False
    assert c.micro_batch_size == 4
    c.validate(world_size=1)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config().lora_r = 4  # type: ignore[misc]


# --- files and overrides --------------------------------------------------------------------------------


def expected_from_file() -> TrainConfig:
    return config(
        template="alpaca",
        cutoff_len=256,
        batch_size=64,
        micro_batch_size=8,
        num_epochs=2.0,
        learning_rate=3e-4,
        lora_target_modules=("q_proj", "v_proj"),
        train_on_inputs=True,
    )


def test_load_toml(tmp_path: Path):
    loaded = load_config(write(tmp_path / "train.toml", TOML))
    assert loaded == expected_from_file()
    assert isinstance(loaded.num_epochs, float)
    assert isinstance(loaded.lora_target_modules, tuple)


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_load_yaml(tmp_path: Path, suffix: str):
    assert load_config(write(tmp_path / f"train{suffix}", YAML)) == expected_from_file()


@pytest.mark.parametrize(("name", "text"), [("train.toml", TOML), ("train.yaml", YAML)])
def test_overrides_win_over_the_file(tmp_path: Path, name: str, text: str):
    overrides = parse_overrides(
        ["--learning-rate", "2e-4", "--lora-r=16", "--load-8bit", "--lora-target-modules", "q_proj,k_proj"]
    )
    loaded = load_config(write(tmp_path / name, text), overrides)
    assert loaded == dataclasses.replace(
        expected_from_file(), learning_rate=2e-4, lora_r=16, load_8bit=True, lora_target_modules=("q_proj", "k_proj")
    )


def test_overrides_with_typed_values(tmp_path: Path):
    path = write(tmp_path / "train.toml", TOML)
    loaded = load_config(path, {"cutoff_len": 128, "lora_dropout": 0.1, "lora_target_modules": ["o_proj"]})
    assert (loaded.cutoff_len, loaded.lora_dropout, loaded.lora_target_modules) == (128, 0.1, ("o_proj",))


def test_overrides_are_validated(tmp_path: Path):
    with pytest.raises(ConfigError, match="micro_batch_size"):
        load_config(write(tmp_path / "train.toml", TOML), {"micro_batch_size": "48"})


def test_load_config_uses_world_size_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write(tmp_path / "train.toml", TOML)  # batch 64, micro 8: 8 processes fit, 16 do not
    monkeypatch.setenv("WORLD_SIZE", "8")
    load_config(path)
    monkeypatch.setenv("WORLD_SIZE", "16")
    with pytest.raises(ConfigError, match="x 16 process"):
        load_config(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load_config(tmp_path / "absent.toml")


def test_unparsable_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(write(tmp_path / "bad.toml", "base_model = \n"))


def test_file_that_is_not_a_mapping(tmp_path: Path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path / "list.yaml", "- a\n- b\n"))


def test_unknown_field_in_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"unknown field\(s\) lora_rank"):
        load_config(write(tmp_path / "train.toml", TOML + "lora_rank = 4\n"))


def test_missing_required_field_in_file(tmp_path: Path):
    text = TOML.replace('data = "corpora/stellar"\n', "")
    with pytest.raises(ConfigError, match=r"missing required field\(s\) data"):
        load_config(write(tmp_path / "train.toml", text))


def test_empty_required_field_in_yaml(tmp_path: Path):
    text = YAML.replace("output_dir: runs/one", "output_dir:")
    with pytest.raises(ConfigError, match=r"missing required field\(s\) output_dir"):
        load_config(write(tmp_path / "train.yaml", text))


def test_wrongly_typed_value(tmp_path: Path):
    with pytest.raises(ConfigError, match="lora_r: cannot read"):
        load_config(write(tmp_path / "train.toml", TOML), {"lora_r": "eight"})
    with pytest.raises(ConfigError, match="cutoff_len"):
        from_mapping({**REQUIRED, "cutoff_len": 2.5})
    with pytest.raises(ConfigError, match="load_8bit"):
        from_mapping({**REQUIRED, "load_8bit": "maybe"})


def test_optional_field_reads_none():
    assert from_mapping({**REQUIRED, "resume_from_checkpoint": "none"}).resume_from_checkpoint is None
    assert from_mapping({**REQUIRED, "resume_from_checkpoint": "latest"}).resume_from_checkpoint == "latest"


# --- parse_overrides ------------------------------------------------------------------------------------


def test_parse_overrides_forms():
    assert parse_overrides(["--learning-rate", "2e-4"]) == {"learning_rate": "2e-4"}
    assert parse_overrides(["--lora-r=16"]) == {"lora_r": "16"}
    assert parse_overrides(["--load-8bit"]) == {"load_8bit": "true"}
    assert parse_overrides(["--lora-target-modules", "q_proj,v_proj"]) == {"lora_target_modules": "q_proj,v_proj"}
    assert parse_overrides([]) == {}


def test_parse_overrides_bare_flag_before_another_option():
    assert parse_overrides(["--load-8bit", "--lora-r", "4", "--gradient-checkpointing"]) == {
        "load_8bit": "true",
        "lora_r": "4",
        "gradient_checkpointing": "true",
    }


def test_parse_overrides_negative_number_is_a_value():
    assert parse_overrides(["--max-steps", "-1"]) == {"max_steps": "-1"}


def test_parse_overrides_underscores_are_accepted():
    assert parse_overrides(["--lora_alpha", "32"]) == {"lora_alpha": "32"}


def test_parse_overrides_coerce_to_field_types():
    overrides = parse_overrides(
        ["--learning-rate", "2e-4", "--lora-r=16", "--load-8bit", "--lora-target-modules", "q_proj,v_proj"]
    )
    c = from_mapping({**REQUIRED, **overrides})
    assert c.learning_rate == 2e-4
    assert c.lora_r == 16
    assert c.load_8bit is True
    assert c.lora_target_modules == ("q_proj", "v_proj")


def test_target_modules_list_is_trimmed():
    overrides = parse_overrides(["--lora-target-modules", " q_proj , v_proj,"])
    assert from_mapping({**REQUIRED, **overrides}).lora_target_modules == ("q_proj", "v_proj")
    assert from_mapping({**REQUIRED, "lora_target_modules": "all-linear"}).lora_target_modules == ("all-linear",)


def test_parse_overrides_explicit_empty_value():
    # `validation_split = ""` means no evaluation; `--validation-split=` must give "", not a bare flag's "true",
    # and must not swallow the next option's value.
    assert parse_overrides(["--validation-split="]) == {"validation_split": ""}
    assert parse_overrides(["--validation-split=", "--lora-r", "4"]) == {"validation_split": "", "lora_r": "4"}
    assert parse_overrides(["--validation-split", ""]) == {"validation_split": ""}


def test_parse_overrides_unknown_option_is_named():
    with pytest.raises(ConfigError, match="--lora-rank"):
        parse_overrides(["--lora-r", "8", "--lora-rank", "8"])


def test_parse_overrides_positional_argument_is_rejected():
    with pytest.raises(ConfigError, match="'stray'"):
        parse_overrides(["stray"])


# --- validate -------------------------------------------------------------------------------------------


def test_batch_size_must_divide_by_micro_batch_times_world_size():
    c = config(batch_size=12, micro_batch_size=4)
    c.validate(world_size=1)
    with pytest.raises(ConfigError, match="batch_size 12 is not divisible by micro_batch_size 4 x 2"):
        c.validate(world_size=2)
    with pytest.raises(ConfigError, match="batch_size 10 is not divisible by micro_batch_size 4 x 1"):
        config(batch_size=10, micro_batch_size=4).validate(world_size=1)


def test_world_size_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    c = config(batch_size=12, micro_batch_size=4)
    monkeypatch.setenv("WORLD_SIZE", "3")
    c.validate()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="x 2 process"):
        c.validate()


@pytest.mark.parametrize(
    "field",
    [
        "cutoff_len",
        "batch_size",
        "micro_batch_size",
        "lora_r",
        "lora_alpha",
        "logging_steps",
    ],
)
def test_zero_is_rejected(field: str):
    with pytest.raises(ConfigError, match=f"{field}: must be > 0, got 0"):
        config(**{field: 0}).validate(world_size=1)


@pytest.mark.parametrize("field", ["warmup_steps", "eval_steps", "save_steps"])
def test_intervals_may_be_zero_but_not_negative(field: str):
    config(**{field: 0}).validate(world_size=1)  # 0: no warmup / no evaluation or checkpoint during training
    with pytest.raises(ConfigError, match=f"{field}: must be >= 0, got -1"):
        config(**{field: -1}).validate(world_size=1)


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_min_instruction_share_is_a_share(share: float):
    with pytest.raises(ConfigError, match="min_instruction_share"):
        config(min_instruction_share=share).validate(world_size=1)


def test_cutoff_len_zero():
    with pytest.raises(ConfigError, match="cutoff_len"):
        config(cutoff_len=0).validate(world_size=1)


@pytest.mark.parametrize(("field", "value"), [("learning_rate", 0.0), ("num_epochs", -1.0)])
def test_learning_rate_and_epochs_must_be_positive(field: str, value: float):
    with pytest.raises(ConfigError, match="learning_rate and num_epochs"):
        config(**{field: value}).validate(world_size=1)


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_lora_dropout_range(dropout: float):
    with pytest.raises(ConfigError, match="lora_dropout"):
        config(lora_dropout=dropout).validate(world_size=1)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("precision", "fp8", PRECISIONS),
        ("batching", "sorted", BATCHING),
        ("cutoff_policy", "truncate", CUTOFF_POLICIES),
    ],
)
def test_choices(field: str, value: str, allowed: tuple[str, ...]):
    with pytest.raises(ConfigError, match=f"{field}: '{value}' is not one of {', '.join(allowed)}"):
        config(**{field: value}).validate(world_size=1)


def test_choice_values():
    assert PRECISIONS == ("bf16", "fp16", "fp32")
    assert BATCHING == ("random", "group_by_length", "packed")
    assert CUTOFF_POLICIES == ("truncate_prompt", "truncate_response", "drop")
    for precision in PRECISIONS:
        for batching in BATCHING:
            for policy in CUTOFF_POLICIES:
                config(precision=precision, batching=batching, cutoff_policy=policy).validate(world_size=1)


def test_pack_len_must_hold_a_full_example_when_packing():
    assert config().pack_len == 2048
    config(batching="packed", cutoff_len=512, pack_len=512).validate(world_size=1)
    with pytest.raises(ConfigError, match="pack_len 256 is shorter than cutoff_len 512"):
        config(batching="packed", cutoff_len=512, pack_len=256).validate(world_size=1)
    config(batching="group_by_length", cutoff_len=512, pack_len=256).validate(world_size=1)  # unused then


def test_unknown_template():
    with pytest.raises(ConfigError, match=r"template: no template named 'no-such-template'"):
        config(template="no-such-template").validate(world_size=1)


def test_template_path_is_accepted(tmp_path: Path):
    path = write(
        tmp_path / "mine.json",
        '{"description": "d", "prompt_input": "{instruction} {input}", "prompt_no_input": "{instruction}", '
        '"response_split": "A:"}',
    )
    config(template=str(path)).validate(world_size=1)


def test_no_target_modules():
    with pytest.raises(ConfigError, match="lora_target_modules"):
        config(lora_target_modules=()).validate(world_size=1)


# --- LoRA targets against the tiny model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def names(tiny_model) -> list[str]:
    from stellar_train.model import module_names

    return module_names(str(tiny_model))


def test_module_names_of_the_tiny_llama(names: list[str]):
    assert "model.layers.0.self_attn.q_proj" in names
    assert "model.layers.1.mlp.down_proj" in names
    assert "lm_head" in names


@pytest.mark.parametrize(
    "targets",
    [
        ("q_proj", "k_proj", "v_proj", "o_proj"),
        ("q_proj", "v_proj"),
        ("gate_proj", "up_proj", "down_proj"),
        ("self_attn.q_proj",),
        ("all-linear",),
    ],
)
def test_known_target_modules_pass(names: list[str], targets: tuple[str, ...]):
    check_target_modules(config(lora_target_modules=targets), names)


def test_bogus_target_module_is_named(names: list[str]):
    with pytest.raises(ConfigError, match="lora_target_modules: bogus_proj not in the model models/llama"):
        check_target_modules(config(lora_target_modules=("q_proj", "bogus_proj")), names)


def test_target_must_be_a_whole_name_suffix(names: list[str]):
    with pytest.raises(ConfigError, match="lora_target_modules: proj not in"):
        check_target_modules(config(lora_target_modules=("proj",)), names)


# --- the real TrainingArguments and LoraConfig ----------------------------------------------------------


def test_training_arguments_from_the_defaults(tmp_path: Path):
    from transformers import TrainingArguments

    from stellar_train.recipe import training_arguments

    c = config(output_dir=str(tmp_path / "out"))
    args = training_arguments(c, plan(c, examples=125_000, rows=125_000, tokens=10**7), has_eval=True)
    assert isinstance(args, TrainingArguments)
    assert args.per_device_train_batch_size == c.micro_batch_size == 4
    assert args.gradient_accumulation_steps == c.batch_size // c.micro_batch_size == 64
    assert args.train_sampling_strategy == "group_by_length"
    assert args.eval_strategy == "steps"
    assert args.eval_steps == 200
    assert args.learning_rate == 1e-4
    assert args.num_train_epochs == 3.0
    assert args.warmup_steps == 100
    assert args.bf16 is True and args.fp16 is False
    assert args.seed == 42
    assert args.remove_unused_columns is False
    assert args.label_names == ["labels"]
    assert args.report_to in ([], ["none"], "none")
    assert args.include_num_input_tokens_seen == "non_padding"


@pytest.mark.parametrize("batching", ["random", "packed"])
def test_training_arguments_without_length_grouping(tmp_path: Path, batching: str):
    from stellar_train.recipe import training_arguments

    c = config(output_dir=str(tmp_path / "out"), batching=batching, precision="fp32", batch_size=32, micro_batch_size=8)
    rows = 1000 if batching == "random" else 250  # packed: four examples a row
    args = training_arguments(c, plan(c, examples=1000, rows=rows, tokens=10**5), has_eval=False)
    assert args.train_sampling_strategy == "random"
    assert args.eval_strategy == "no"
    # 32 examples a step: 8 examples x 4, or 8 rows of four examples x 1
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == ((8, 4) if rows == 1000 else (8, 1))
    assert args.bf16 is False and args.fp16 is False


def test_training_arguments_divide_accumulation_by_world_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import transformers

    from stellar_train import recipe

    # Building real TrainingArguments for 2 processes needs a live process group (torchrun), so the
    # arguments the recipe passes are recorded instead.
    monkeypatch.setattr(transformers, "TrainingArguments", lambda **kwargs: kwargs)
    c = config(output_dir=str(tmp_path / "out"), batch_size=32, micro_batch_size=4, precision="fp32")
    c.validate(world_size=2)
    kwargs = recipe.training_arguments(c, plan(c, examples=100, rows=100, tokens=10**4, world_size=2), has_eval=False)
    assert kwargs["per_device_train_batch_size"] == 4
    assert kwargs["gradient_accumulation_steps"] == 4  # 4 per step x 4 steps x 2 processes = 32
    assert kwargs["ddp_find_unused_parameters"] is False


def test_lora_config_from_the_defaults():
    from peft import LoraConfig

    from stellar_train.model import lora_config

    lora = lora_config(config())
    assert isinstance(lora, LoraConfig)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 16, 0.05)
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert lora.bias == "none"
    assert lora.task_type == "CAUSAL_LM"


def test_lora_config_all_linear_and_overrides():
    from stellar_train.model import lora_config

    lora = lora_config(config(lora_r=16, lora_alpha=32, lora_dropout=0.1, lora_target_modules=("all-linear",)))
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (16, 32, 0.1)
    assert lora.target_modules == "all-linear"


@pytest.mark.parametrize(
    ("field", "value"), [("lora_r", True), ("learning_rate", False), ("load_8bit", 1), ("train_on_inputs", 0.0)]
)
def test_booleans_and_numbers_are_not_confused(field: str, value: object) -> None:
    # TOML `lora_r = true` or `load_8bit = 1` is a mistake in the file, not a value to guess.
    with pytest.raises(ConfigError, match=field):
        from_mapping({"base_model": "m", "data": "d", "output_dir": "o", field: value})


def test_the_shipped_stellarspeak_training_config_reads_with_its_defaults() -> None:
    import tomllib

    from tests.conftest import ROOT

    values = tomllib.loads((ROOT / "corpus" / "train_stellarspeak.toml").read_text(encoding="utf-8"))
    config = from_mapping(values, "corpus/train_stellarspeak.toml")
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (8, 16, 0.05)
    assert config.lora_target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert (config.batch_size, config.learning_rate, config.num_epochs, config.template) == (
        256,
        1e-4,
        3,
        "stellarspeak",
    )


def test_an_unknown_lr_scheduler_is_a_config_error_naming_the_field():
    """Not a TrainingArguments traceback after tokenizing and loading the model."""
    with pytest.raises(ConfigError, match=r"^lr_scheduler: 'cosine_annealing' is not one of linear, cosine"):
        config(lr_scheduler="cosine_annealing").validate(world_size=1)
    config(lr_scheduler="cosine").validate(world_size=1)


def test_a_packed_batch_need_not_divide_by_the_micro_batch():
    """Packed, the schedule picks rows per micro-batch and accumulation itself (schedule.py)."""
    config(batching="packed", batch_size=10, micro_batch_size=4).validate(world_size=1)
