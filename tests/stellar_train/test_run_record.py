"""The run record stores resolved paths, so it reads the same from any directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from stellar_train.config import from_mapping
from stellar_train.run_record import load, resolved_config, save


def test_local_paths_are_resolved_and_hub_ids_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "corpus").mkdir()
    monkeypatch.chdir(tmp_path)
    config = from_mapping({"base_model": "meta-llama/Llama-2-7b-hf", "data": "corpus", "output_dir": "out/a"})
    values = resolved_config(config)
    assert values["data"] == str(tmp_path / "corpus")
    assert values["output_dir"] == str(tmp_path / "out" / "a")  # resolved even before it exists
    assert values["base_model"] == "meta-llama/Llama-2-7b-hf"
    assert values["lora_target_modules"] == ("q_proj", "k_proj", "v_proj", "o_proj")


def test_save_is_atomic_and_load_reads_it_back(tmp_path: Path) -> None:
    assert load(tmp_path) is None
    save(tmp_path / "run", {"config": {"lr": 1}, "名": "星语者"})
    assert load(tmp_path / "run") == {"config": {"lr": 1}, "名": "星语者"}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["train_config.json"]  # no staging file left
