"""bench/gpu_check.py in its --tiny form (CPU, fp32): every code path that needs no CUDA, and the
budget bookkeeping. The fp32 equivalents of the bf16 GPU tolerances are 1e-4 (loss) and 1e-3
(gradient); on CPU packed and padded losses agree to ~1e-7 and the leak control (packed rows under a
plain causal mask) moves the loss by ~1e-2, so the check can fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import gpu_check_lib as lib
import gpu_varlen

SCRIPT = ROOT / "bench" / "gpu_check.py"


def run_tiny(out, *extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


def test_tiny_run_checks_packing_accumulation_and_throughput(tmp_path) -> None:
    report = run_tiny(tmp_path / "x.json")
    assert report["finished"] and report["settings"]["dtype"] == "float32"
    assert report["tolerance"]["loss"] == 1e-4 and report["tolerance"]["grad"] == 1e-3
    entries = report["entries"]

    checks = {
        (e["settings"]["attention"], e["settings"]["micro_batch"]): e
        for e in entries
        if e["kind"] == "packed_vs_padded"
    }
    assert set(checks) == {(a, m) for a in ("sdpa", "eager", gpu_varlen.NAME) for m in (1, 4)}
    for (attention, _), entry in checks.items():
        if attention == gpu_varlen.NAME and entry["status"] == "skipped":
            assert entry["reason"]
            continue
        assert entry["status"] == "ok", entry
        result = entry["result"]
        assert result["within_tolerance"] and result["rel_diff"] <= 1e-4, result
        if attention != gpu_varlen.NAME:
            assert result["leak_control_rel_diff"] > 100 * max(result["rel_diff"], 1e-7)

    (accumulation,) = [e for e in entries if e["kind"] == "grad_accumulation"]
    assert accumulation["status"] == "ok", accumulation
    assert accumulation["result"]["matches"]
    assert accumulation["result"]["lora_tensors_with_grad"] == accumulation["result"]["lora_tensors"] > 0

    throughput = [e for e in entries if e["kind"] == "throughput"]
    layouts = {
        (e["settings"]["model"], e["settings"]["layout"], e["settings"]["micro_batch"], e["settings"]["checkpointing"])
        for e in throughput
    }
    assert {("tiny-7b", "padded", 4, gc) for gc in (False, True)} <= layouts
    assert {("tiny-7b", "packed", m, gc) for m in (1, 2, 4) for gc in (False, True)} <= layouts
    assert ("tiny-13b", "padded", 2, False) in layouts
    for entry in throughput:
        if entry["settings"]["attention"] == gpu_varlen.NAME and entry["status"] == "skipped":
            continue
        assert entry["status"] == "ok", entry
        result = entry["result"]
        assert result["tokens_per_s"] > 0 and 0 < result["label_tokens_per_s"] <= result["tokens_per_s"]
        assert result["peak_mem_gb"] is None  # CPU
        assert set(result["mfu"]) == {"4N", "6N"} and set(result["mfu"]["4N"]) == {"989", "790"}
    assert "| packed vs padded, sdpa micro 1 | ok |" in (tmp_path / "x.md").read_text(encoding="utf-8")


def test_a_spent_budget_still_writes_every_entry_as_skipped(tmp_path) -> None:
    report = run_tiny(tmp_path / "x.json", "--budget-s", "0.001")
    assert report["finished"] and report["entries"]
    assert all(e["status"] == "skipped" and e["reason"].startswith("budget") for e in report["entries"])
    kinds = {e["kind"] for e in report["entries"]}
    assert kinds == {"packed_vs_padded", "grad_accumulation", "throughput"}


def test_varlen_attention_reads_cu_seq_lens_or_position_ids() -> None:
    """A flattened (1, total) batch with cu_seq_lens_q/k (what a flattening collate_packed passes) and
    the same batch with position_ids only give each example's own logits."""
    registered, _ = gpu_varlen.register(torch.device("cpu"))
    assert registered
    model = lib.build("tiny-7b", torch.device("cpu"), torch.float32).base.eval()
    examples = lib.uniform_examples(3, 5, 9, lib.VOCAB["tiny-7b"], seed=5)
    lengths = [len(e) for e in examples]
    ids = torch.tensor([[t for e in examples for t in e.input_ids]])
    positions = torch.tensor([[p for n in lengths for p in range(n)]])
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in examples])
        lib.set_attention(lib.Model("tiny-7b", model, 0, None), gpu_varlen.NAME)
        flat = model(
            input_ids=ids,
            position_ids=positions,
            cu_seq_lens_q=cu,
            cu_seq_lens_k=cu,
            max_length_q=max(lengths),
            max_length_k=max(lengths),
        ).logits[0]
        derived = model(input_ids=ids, position_ids=positions).logits[0]
    torch.testing.assert_close(flat, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(derived, alone, atol=1e-5, rtol=1e-5)
