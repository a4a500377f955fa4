"""`stellar-train train` under torchrun: two CPU processes on the gloo backend."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_train_with_two_processes(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapter"
    config = tmp_path / "train.toml"
    config.write_text(
        f'base_model = "{tiny_model}"\ndata = "{tiny_corpus}"\noutput_dir = "{out}"\n'
        'precision = "fp32"\nbatching = "random"\nbatch_size = 8\nmicro_batch_size = 2\nmax_steps = 2\n'
        "learning_rate = 1e-2\nwarmup_steps = 0\nsave_steps = 0\neval_steps = 0\nlogging_steps = 1\n"
        "lora_dropout = 0.0\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT")}
    env |= {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "stellar_train.cli", "train", str(config),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun did not finish in 180 s:\n{(exc.stderr or b'')[-4000:]!r}")
    assert done.returncode == 0, done.stderr[-6000:]
    assert done.stdout.count(f"adapter: {out}") == 2  # each process reports

    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert (out / "tokenizer.json").is_file()
    weights = load_file(out / "adapter_model.safetensors")
    assert all(t.norm() > 0 for k, t in weights.items() if "lora_B" in k)
    run = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    assert run["world_size"] == 2
    assert run["gradient_accumulation_steps"] == 8 // (2 * 2)
    assert run["config"]["batch_size"] == 8 and run["config"]["micro_batch_size"] == 2
    steps = [e["step"] for e in run["log_history"] if "loss" in e]
    assert steps == [1, 2]
    assert "metrics" in run and run["metrics"]["train_loss"] > 0

    # Each step sees all 8 examples (4 per process), as one process with 4 accumulation steps does: the
    # same gradients and the same adapter.
    from stellar_train import recipe
    from stellar_train.config import load_config

    single = recipe.train(load_config(config, {"output_dir": str(tmp_path / "single")}))
    assert single.run["world_size"] == 1 and single.run["gradient_accumulation_steps"] == 4
    ddp_logs = [e for e in run["log_history"] if "loss" in e]
    single_logs = [e for e in single.run["log_history"] if "loss" in e]
    for a, b in zip(ddp_logs, single_logs, strict=True):
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    single_weights = load_file(tmp_path / "single" / "adapter_model.safetensors")
    assert weights.keys() == single_weights.keys()
    for key, tensor in weights.items():
        assert (tensor - single_weights[key]).abs().max() < 1e-5, key


def test_batch_not_divisible_over_two_processes_fails_fast(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """batch 4 = micro 4 x GA 1 on one process, but not over two: every rank exits with the config error."""
    config = tmp_path / "train.toml"
    config.write_text(
        f'base_model = "{tiny_model}"\ndata = "{tiny_corpus}"\noutput_dir = "{tmp_path / "out"}"\n'
        'precision = "fp32"\nbatch_size = 4\nmicro_batch_size = 4\nmax_steps = 1\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT")}
    env |= {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "stellar_train.cli", "train", str(config),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "not divisible by micro_batch_size 4 x 2 process(es)" in done.stderr
    assert not (tmp_path / "out").exists()
