"""Checks before anything loads: each user error is one ConfigError naming the field, GPU checks are
notes in a dry run on a machine without CUDA, and a resume must continue the same run."""

from __future__ import annotations

from pathlib import Path

import pytest

from stellar_train.checks import Devices, check_resume, checkpoints, preflight, resume_checkpoint
from stellar_train.config import ConfigError, from_mapping

CPU = Devices(cuda=False, count=0, bf16=False, world_size=1)
ONE_GPU = Devices(cuda=True, count=1, bf16=True, world_size=1)
OLD_GPU = Devices(cuda=True, count=1, bf16=False, world_size=1)  # e.g. a V100
EIGHT_GPUS = Devices(cuda=True, count=8, bf16=True, world_size=1)


def config(tmp_path: Path, **fields):
    return from_mapping({"base_model": "hub/model", "data": "data", "output_dir": str(tmp_path / "out"), **fields})


def test_the_defaults_pass_on_one_gpu_and_on_the_cpu(tmp_path):
    assert preflight(config(tmp_path), ONE_GPU) == []
    assert preflight(config(tmp_path, precision="fp32"), CPU) == []


def test_bf16_on_a_gpu_without_it_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^precision: bf16 is not supported by this GPU"):
        preflight(config(tmp_path), OLD_GPU)
    preflight(config(tmp_path, precision="fp16"), OLD_GPU)


def test_several_gpus_in_one_process_are_refused(tmp_path):
    """The Trainer would wrap the model in DataParallel: micro x 8 per forward, 8x the batch."""
    with pytest.raises(ConfigError, match=r"8 GPUs are visible to one process.*torchrun --nproc_per_node 8"):
        preflight(config(tmp_path), EIGHT_GPUS)
    # Launched by torchrun (LOCAL_RANK set), each process drives one device: fine, even one process.
    preflight(config(tmp_path), Devices(cuda=True, count=8, bf16=True, world_size=8, launched=True))
    preflight(config(tmp_path), Devices(cuda=True, count=8, bf16=True, world_size=1, launched=True))


def test_8bit_needs_cuda_and_bitsandbytes(tmp_path):
    with pytest.raises(ConfigError, match=r"^load_8bit: 8-bit loading needs a CUDA GPU"):
        preflight(config(tmp_path, load_8bit=True, precision="fp32"), CPU)


def test_fp16_needs_cuda(tmp_path):
    with pytest.raises(ConfigError, match=r"^precision: fp16 needs a CUDA GPU"):
        preflight(config(tmp_path, precision="fp16"), CPU)


def test_an_unknown_attention_implementation_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^attn_implementation: 'flash_attention_9' is not one of .*sdpa"):
        preflight(config(tmp_path, attn_implementation="flash_attention_9"), ONE_GPU)


@pytest.mark.skipif(__import__("importlib").util.find_spec("flash_attn") is not None, reason="flash-attn installed")
def test_flash_attention_without_the_package_is_an_error_on_a_gpu_and_a_note_in_a_dry_run(tmp_path):
    settings = config(tmp_path, attn_implementation="flash_attention_2")
    with pytest.raises(ConfigError, match="flash_attention_2 needs the flash_attn package"):
        preflight(settings, ONE_GPU)
    notes = preflight(settings, CPU, dry_run=True)
    assert len(notes) == 1 and "flash_attn" in notes[0] and "checked when run on a GPU" in notes[0]


def test_a_dry_run_without_a_gpu_notes_every_gpu_check(tmp_path):
    notes = preflight(config(tmp_path, load_8bit=True, precision="fp16"), CPU, dry_run=True)
    assert any("fp16" in n for n in notes) and any("8-bit" in n for n in notes)
    # A dry run on a GPU machine checks for real.
    with pytest.raises(ConfigError):
        preflight(config(tmp_path), OLD_GPU, dry_run=True)


def test_report_to_must_name_a_known_integration(tmp_path):
    with pytest.raises(ConfigError, match=r"^report_to: unknown integration 'mlflow' \(allowed: tensorboard, wandb\)"):
        preflight(config(tmp_path, report_to="mlflow"), ONE_GPU)


def test_resume_latest_needs_a_checkpoint(tmp_path):
    settings = config(tmp_path, resume_from_checkpoint="latest")
    with pytest.raises(
        ConfigError, match=r"^resume_from_checkpoint: latest, but .* has no complete checkpoint-N folder"
    ):
        preflight(settings, ONE_GPU)
    for step in (10, 200, 30, 300):
        (tmp_path / "out" / f"checkpoint-{step}").mkdir(parents=True)
        if step != 300:  # checkpoint-300 was cut off while it was written
            (tmp_path / "out" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "out" / "checkpoint-final").mkdir()
    assert [p.name for p in checkpoints(tmp_path / "out")] == ["checkpoint-10", "checkpoint-30", "checkpoint-200"]
    preflight(settings, ONE_GPU)
    assert resume_checkpoint(settings) == str(tmp_path / "out" / "checkpoint-200")


def test_a_new_run_into_a_folder_with_checkpoints_is_refused_unless_forced(tmp_path):
    (tmp_path / "out" / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "out" / "checkpoint-5" / "trainer_state.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"holds checkpoints of an earlier run.*--force"):
        preflight(config(tmp_path), ONE_GPU)
    preflight(config(tmp_path), ONE_GPU, force=True)


def test_resume_from_a_folder_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="is not a Trainer checkpoint"):
        preflight(config(tmp_path, resume_from_checkpoint=str(tmp_path)), ONE_GPU)


def record(**config_fields):
    return {"config": {"learning_rate": 1e-4, "output_dir": "/a", "logging_steps": 10, **config_fields},
            "corpus_manifest_sha256": "abc"}  # fmt: skip


def test_a_resume_with_the_same_config_passes_and_run_only_fields_may_change():
    assert check_resume(record(output_dir="/b", logging_steps=1), record()) == []


def test_a_record_of_an_older_version_reads_with_todays_defaults_and_resolved_paths(tmp_path, monkeypatch):
    """Records written before min_instruction_share existed, with paths as typed."""
    from stellar_train.run_record import resolved_config

    (tmp_path / "corpus").mkdir()
    monkeypatch.chdir(tmp_path)
    now = from_mapping({"base_model": "hub/model", "data": "corpus", "output_dir": "out"})
    old = {k: v for k, v in resolved_config(now).items() if k != "min_instruction_share"}
    old |= {"data": "corpus", "output_dir": "out", "lora_target_modules": list(now.lora_target_modules)}
    run = {"config": resolved_config(now), "corpus_manifest_sha256": None}
    assert check_resume(run, {"config": old, "corpus_manifest_sha256": None}) == []


def test_a_resume_with_another_config_or_corpus_is_refused_unless_forced():
    changed = record(learning_rate=2e-4)
    changed["corpus_manifest_sha256"] = "def"
    with pytest.raises(ConfigError, match=r"learning_rate: 0.0001 -> 0.0002; the corpus manifest changed.*--force"):
        check_resume(changed, record())
    assert check_resume(changed, record(), force=True) == [
        "learning_rate: 0.0001 -> 0.0002",
        "the corpus manifest changed",
    ]
