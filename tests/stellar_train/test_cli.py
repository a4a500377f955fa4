"""The stellar-train command line: train with overrides, errors as exit code 2, merge, chat from a pipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stellar_train.cli import app

runner = CliRunner()


def write_config(path: Path, tiny_model: Path, tiny_corpus: Path, out: Path, extra: str = "") -> Path:
    path.write_text(
        f'base_model = "{tiny_model}"\n'
        f'data = "{tiny_corpus}"\n'
        f'output_dir = "{out}"\n'
        'precision = "fp32"\n'
        'batching = "random"\n'
        "batch_size = 4\n"
        "micro_batch_size = 2\n"
        "max_steps = 50\n"
        "learning_rate = 0.5\n"
        "warmup_steps = 0\n"
        "save_steps = 0\n"
        "eval_steps = 0\n"
        "logging_steps = 1\n" + extra,
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train CONFIG --max-steps 2 --learning-rate 1e-3`: the overrides win over the file's values."""
    root = tmp_path_factory.mktemp("cli")
    config = write_config(root / "train.toml", tiny_model, tiny_corpus, root / "adapter")
    result = runner.invoke(
        app, ["train", str(config), "--max-steps", "2", "--learning-rate", "1e-3", "--lora-r=4"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert f"adapter: {root / 'adapter'}" in result.stdout
    assert "train_loss" in result.stdout and "eval_loss" in result.stdout
    return root / "adapter"


def test_train_applies_overrides(trained: Path) -> None:
    run = json.loads((trained / "train_config.json").read_text(encoding="utf-8"))
    assert run["config"]["max_steps"] == 2 and run["config"]["learning_rate"] == 1e-3 and run["config"]["lora_r"] == 4
    assert run["config"]["batch_size"] == 4 and run["gradient_accumulation_steps"] == 2  # from the file
    assert max(e["step"] for e in run["log_history"]) == 2
    assert (trained / "adapter_model.safetensors").is_file()
    assert json.loads((trained / "adapter_config.json").read_text())["r"] == 4


def test_yaml_config(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        f"base_model: {tiny_model}\ndata: {tiny_corpus}\noutput_dir: {tmp_path / 'out'}\nprecision: fp32\n"
        "batch_size: 2\nmicro_batch_size: 2\nmax_steps: 1\nwarmup_steps: 0\nsave_steps: 0\nvalidation_split: ''\n"
        "lora_target_modules: [q_proj, v_proj]\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "out" / "train_config.json").read_text(encoding="utf-8"))
    assert run["config"]["lora_target_modules"] == ["q_proj", "v_proj"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-such-field", "1"], "--no-such-field"),
        (["--learning-rate", "fast"], "learning_rate"),
        (["--micro-batch-size", "3"], "not divisible"),
        (["--lora-target-modules", "q_proj,wq"], "wq"),
        (["--precision", "fp64"], "precision"),
    ],
)
def test_bad_settings_exit_2_with_a_message(
    tiny_model: Path, tiny_corpus: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    config = write_config(tmp_path / "train.toml", tiny_model, tiny_corpus, tmp_path / "out")
    result = runner.invoke(app, ["train", str(config), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_missing_base_model_exits_2(tiny_corpus: Path, tmp_path: Path) -> None:
    """A base_model path that does not exist is a user error like any other: `error:` naming it, exit 2,
    no traceback."""
    config = write_config(tmp_path / "train.toml", tmp_path / "no_model", tiny_corpus, tmp_path / "out")
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.exception!r}"
    assert result.stderr.startswith("error: ") and "no_model" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "error:" in result.stderr and "nope.toml" in result.stderr


def test_merge_into_the_right_base(trained: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    result = runner.invoke(
        app, ["merge", "--model-path", str(tiny_model), "--adapter", str(trained), "--out", str(out), "--dtype", "fp32"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert (out / "merge_info.json").is_file()


def test_merge_with_a_wrong_base_exits_2(trained: Path, tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    other = tmp_path / "other"
    config = LlamaConfig.from_pretrained(tiny_model)
    config.rms_norm_eps = 1e-5
    LlamaForCausalLM(config).save_pretrained(other)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(other)
    args = ["merge", "--model-path", str(other), "--adapter", str(trained), "--out", str(tmp_path / "merged")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "--force" in result.stderr
    assert not (tmp_path / "merged").exists()
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "merged" / "merge_info.json").is_file()


def test_chat_answers_from_a_pipe(trained: Path, tiny_model: Path) -> None:
    args = ["chat", "--model-path", str(tiny_model), "--adapter", str(trained), "--style", "plain",
            "--temperature", "0", "--max-new-tokens", "5"]  # fmt: skip
    result = runner.invoke(app, args, input="What is a pulsar?\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
    assert result.stdout.endswith("\n") and result.stdout.count("\n") >= 1
    assert "you>" not in result.stdout
    # Two messages, /reset, /exit: two answers, greedy, so the same text for the same message.
    twice = runner.invoke(app, args, input="What is a pulsar?\n/reset\nWhat is a pulsar?\n/exit\nignored\n")
    assert twice.exit_code == 0, twice.output
    assert twice.stdout == result.stdout * 2


def test_chat_rejects_an_unknown_style(tiny_model: Path) -> None:
    result = runner.invoke(app, ["chat", "--model-path", str(tiny_model), "--style", "fancy"], input="")
    assert result.exit_code == 2
    assert "error:" in result.stderr and "fancy" in result.stderr


def test_chat_with_a_missing_model_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["chat", "--model-path", str(tmp_path / "nothing"), "--style", "plain"], input="hi\n")
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr


def test_chat_reports_a_failed_message_goes_on_and_exits_2(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from stellar_train import chat

    class FirstCallFails:
        def __init__(self, model) -> None:
            self.model, self.device, self.calls = model, model.device, 0

        def generate(self, **kwargs):
            self.calls += 1
            if self.calls == 1:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.model.generate(**kwargs)

    real = chat.load_session

    def failing_once(*args, **kwargs):
        session = real(*args, **kwargs)
        session.model = FirstCallFails(session.model)
        return session

    monkeypatch.setattr(chat, "load_session", failing_once)
    args = ["chat", "--model-path", str(tiny_model), "--style", "plain", "--temperature", "0", "--max-new-tokens", "3"]
    result = runner.invoke(app, args, input="first\nsecond\n")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("error:") == 1 and "CUDA out of memory" in result.stderr
    first, second = result.stdout.split("\n")[:2]
    assert first == "" and second  # the second message was answered
