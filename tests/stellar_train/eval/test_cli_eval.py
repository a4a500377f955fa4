"""`stellar-train eval` end to end on real held-out items with the tiny model: base vs a LoRA adapter trained
on the corpus (tables, JSON, PNG, no contamination), a CSV benchmark, the guard's loud warning, and
one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from stellar_train.cli import app

runner = CliRunner()
TYPES = {"single_choice_4", "single_choice_5", "multi_select", "judgment", "subjective"}


def test_compare_base_and_adapter_on_real_heldout_items(
    tiny_model: Path, corpus_adapter: Path, small_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    result = runner.invoke(app, [
        "eval", "--model-path", str(tiny_model), "--adapter", str(corpus_adapter), "--compare",
        "--eval", str(small_corpus / "astro_qa_heldout"), "--limit", "10", "--batch-size", "4",
        "--max-new-tokens", "6", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    for expected in ("by type", "by subfield", "by lang", "base % [95% CI]", "adapter % [95% CI]", "adapter - base"):
        assert expected in result.output
    assert "contamination guard" not in result.output

    report = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert report["settings"]["template"] == "stellarspeak"  # from the adapter's run record
    assert list(report["models"]) == ["base", "adapter"]
    assert report["models"]["adapter"]["adapter"] == str(corpus_adapter)
    assert report["contamination"]["checked"] is True and report["contamination"]["warnings"] == []
    assert set(report["tables"]["type"]) == TYPES
    for row in report["tables"]["type"].values():
        assert set(row) == {"base", "adapter", "delta"} and row["base"]["n"] == 2
    assert set(report["tables"]["lang"]) == {"zh", "en"}
    assert (out / "eval.png").read_bytes()[:4] == b"\x89PNG"

    rows = [json.loads(line) for line in (out / "scored.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 20
    by_model = {}
    for row in rows:
        by_model.setdefault(row["tag"].split(":")[0], {})[row["id"]] = row
    choice = next(i for i, r in by_model["base"].items() if r["type"] == "single_choice_4")
    assert by_model["base"][choice]["details"] != by_model["adapter"][choice]["details"]  # the adapter is applied
    subjective = next(r for r in rows if r["type"] == "subjective")
    assert set(subjective["details"]["subjective"]) == {"bleu1", "rouge1", "rouge2", "rougeL", "chrf"}


def test_csv_benchmark(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "astronomy.csv"
    path.write_text(",Question,A,B,C,D,Answer\n0,What is a pulsar?,A comet,A neutron star,Mars,Venus,B\n"
                    "1,太阳的能量来自哪里？,核聚变,核裂变,燃烧,引力,A\n", encoding="utf-8")  # fmt: skip
    result = runner.invoke(
        app, ["eval", "--model-path", str(tiny_model), "--eval", str(path), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "eval.json").read_text(encoding="utf-8"))
    assert report["eval"]["format"] == "mc-csv" and report["eval"]["types"] == {"single_choice_4": 2}
    assert report["contamination"] == {
        "checked": False, "reason": "no adapter: the base model's training data is unknown", "warnings": [],
    }  # fmt: skip


def test_the_guard_warns_loudly_when_it_cannot_check(
    tiny_model: Path, corpus_adapter: Path, small_corpus: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(corpus_adapter, adapter)
    run = json.loads((adapter / "train_config.json").read_text(encoding="utf-8"))
    run["config"]["data"] = str(tmp_path / "moved_corpus")
    (adapter / "train_config.json").write_text(json.dumps(run), encoding="utf-8")
    result = runner.invoke(app, [
        "eval", "--model-path", str(tiny_model), "--adapter", str(adapter), "--eval", str(small_corpus),
        "--types", "judgment", "--limit", "2",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "contamination guard" in result.output and "could not be done" in result.output


def test_errors_exit_2_with_one_line(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Question,A,B,Answer\nx,1,2,Z\n", encoding="utf-8")
    result = runner.invoke(app, ["eval", "--model-path", str(tiny_model), "--eval", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {bad}: line 2: column Answer: answer 'Z' is not among the options AB"
    result = runner.invoke(app, ["eval", "--model-path", str(tiny_model), "--eval", str(bad), "--compare"])
    assert result.exit_code == 2 and "--compare needs --adapter" in result.output
    result = runner.invoke(app, ["eval", "--model-path", str(tiny_model), "--eval", str(bad), "--map", "colour=x"])
    assert result.exit_code == 2 and "unknown key" in result.output
