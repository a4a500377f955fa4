"""The resumable run on real held-out items (two of each type) with the tiny model: a resumed run writes the
same report as an uninterrupted one and scores only what was missing; a complete rerun loads no model;
settings that change scores get their own tag; `--limit` takes items from every type in turn."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from stellar_train.eval import runner
from stellar_train.eval.items import EvalDataError, EvalItem
from stellar_train.eval.runner import RESULTS_FILE, EvalSettings, ResultStore, evaluate, resolve_template, select
from stellar_train.prompt import PromptTemplate


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def settings(model: Path, corpus: Path, out: Path | None, **fields) -> EvalSettings:
    return EvalSettings(model_path=str(model), eval_path=str(corpus), out=out, limit=10, max_new_tokens=6, **fields)


def test_limit_takes_every_type_in_turn() -> None:
    items = [EvalItem(f"{t}{n}", "g", t, "", "en", "q", (), "A") for t in ("b", "a", "c") for n in range(3)]
    assert [i.id for i in select(items, (), 4)] == ["b0", "a0", "a1", "c0"]  # file order kept
    assert [i.id for i in select(items, ("c",), None)] == ["c0", "c1", "c2"]
    assert select(items, (), 100) == items


def test_resumed_run_equals_an_uninterrupted_one(tiny_model: Path, small_corpus: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    report = evaluate(settings(tiny_model, small_corpus, full), quiet())
    assert report["eval"]["items"] == 10
    assert set(report["eval"]["types"]) == {
        "single_choice_4",
        "single_choice_5",
        "multi_select",
        "judgment",
        "subjective",
    }
    lines = (full / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # interrupted after 4 items, in the middle of writing the fifth
    (resumed / RESULTS_FILE).write_text("\n".join(lines[:4]) + "\n" + lines[4][:25], encoding="utf-8")
    console = quiet()
    evaluate(settings(tiny_model, small_corpus, resumed), console)
    assert "base: 4 of 10 items already scored (resuming)" in console.file.getvalue()
    assert (resumed / "eval.json").read_bytes() == (full / "eval.json").read_bytes()
    after = (resumed / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
    assert len(after) == 4 + 1 + 6  # the cut line stays, ignored; only the 6 missing items were scored


def test_a_complete_rerun_loads_no_model(
    tiny_model: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = evaluate(settings(tiny_model, small_corpus, tmp_path), quiet())

    def refuse(*_):
        raise AssertionError("a complete rerun must not load the model")

    monkeypatch.setattr(runner, "load_model", refuse)
    assert evaluate(settings(tiny_model, small_corpus, tmp_path), quiet()) == first
    with pytest.raises(AssertionError, match="must not load"):  # another mode is another tag: scored anew
        evaluate(settings(tiny_model, small_corpus, tmp_path, mode="generate"), quiet())


def test_generate_mode_scores_objective_items_from_generated_text(tiny_model: Path, small_corpus: Path) -> None:
    report = evaluate(
        settings(tiny_model, small_corpus, None, mode="generate", types=("judgment", "single_choice")), quiet()
    )
    assert set(report["eval"]["types"]) == {"judgment", "single_choice_4", "single_choice_5"}
    assert report["settings"]["mode"] == "generate" and "parse_choice" in report["method"]["objective"]


def test_result_store_ignores_a_cut_line_and_keeps_the_last_row(tmp_path: Path) -> None:
    path = tmp_path / RESULTS_FILE
    rows = [{"tag": "t", "id": "a", "score": 0, "max_score": 1}, {"tag": "t", "id": "a", "score": 1, "max_score": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"tag": "t", "id": "b", "sco', encoding="utf-8")
    store = ResultStore(path)
    assert store.done("t", "a") and not store.done("t", "b") and store.rows[("t", "a")]["score"] == 1


@pytest.mark.parametrize(
    "bad",
    ['{"tag": "t", "id": "x", "sco', '{"tag": "t", "id": "x"}'],  # a cut line that is not the last; no score
)
def test_result_store_refuses_a_bad_line_before_the_end(tmp_path: Path, bad: str) -> None:
    path = tmp_path / RESULTS_FILE
    good = json.dumps({"tag": "t", "id": "a", "score": 1, "max_score": 1})
    path.write_text(f"{bad}\n{good}\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="line 1 is not a scored item"):
        ResultStore(path)


def test_template_comes_from_the_run_record_unless_overridden() -> None:
    alpaca = PromptTemplate.load("alpaca")
    run = {"config": {"template": "gone.json"}, "template": {**alpaca.__dict__, "name": "as-trained"}}
    assert resolve_template(None, run) == PromptTemplate(**{**alpaca.__dict__, "name": "as-trained"})
    assert resolve_template("stellarspeak", run).name == "stellarspeak"
    assert resolve_template(None, {}).name == "stellarspeak"


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"compare": True}, "--compare needs --adapter"), ({"mode": "sample"}, "--mode 'sample'"),
     ({"batch_size": 0}, "at least 1")],
)  # fmt: skip
def test_bad_settings(tiny_model: Path, tmp_path: Path, fields: dict, message: str) -> None:
    with pytest.raises(EvalDataError, match=message):
        evaluate(EvalSettings(model_path=str(tiny_model), eval_path=str(tmp_path), **fields), quiet())


def test_a_merged_checkpoint_is_described_by_its_adapter_run_record(tmp_path: Path) -> None:
    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    adapter.mkdir()
    merged.mkdir()
    (adapter / "train_config.json").write_text(json.dumps({"config": {"data": "corpus"}}), encoding="utf-8")
    (merged / "merge_info.json").write_text(json.dumps({"adapter": str(adapter)}), encoding="utf-8")
    assert runner.training_run(str(merged), None) == ({"config": {"data": "corpus"}}, str(adapter))
    assert runner.training_run(str(tmp_path), None) == ({}, None)
    assert runner.training_run(str(merged), str(adapter))[1] == str(adapter)
