"""The contamination guard: quiet on a corpus's own held-out items, loud when the train split holds an eval
item (by group, or by question text through formatting changes), when the corpus did not hold out the eval
groups, when the corpus changed since training, and when the check cannot be done."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from stellar_train.eval.guard import check_contamination, question_overlap
from stellar_train.eval.items import EvalItem, load_items
from stellar_train.eval.runner import EvalSettings, evaluate, select
from stellar_train.merge import merge
from tests.helpers import alpaca_recipe, write_json


def run_for(corpus: Path) -> dict:
    sha = hashlib.sha256((corpus / "manifest.json").read_bytes()).hexdigest()
    return {"config": {"data": str(corpus)}, "corpus_manifest_sha256": sha}


@pytest.fixture(scope="module")
def heldout(small_corpus: Path) -> list[EvalItem]:
    return load_items(small_corpus)


def test_quiet_on_the_corpus_own_heldout_items(small_corpus: Path, heldout: list[EvalItem]) -> None:
    report = check_contamination(heldout, run_for(small_corpus), "adapter")
    assert report["checked"] is True and report["warnings"] == []
    assert report["train_overlap"] == {"count": 0, "by_group": 0, "by_question": 0, "items": []}
    assert report["heldout_groups_not_in_corpus"] == {"count": 0, "examples": []}


def test_fires_on_an_item_whose_group_is_in_train(small_corpus: Path, heldout: list[EvalItem]) -> None:
    train_group = pl.read_parquet(small_corpus / "data" / "train-00000-of-00001.parquet")["group"][0]
    leaked = EvalItem("leak", train_group, "judgment", "", "en", "A question in no record at all.", (), "true",
                      source="astro_qa")  # fmt: skip
    report = check_contamination([*heldout[:5], leaked], run_for(small_corpus), "adapter")
    assert report["train_overlap"]["items"] == [{"id": "leak", "by": ["group"]}]
    assert report["heldout_groups_not_in_corpus"]["count"] == 1  # nor was it held out
    assert any("CONTAMINATED: 1 of 6 eval items" in w for w in report["warnings"])
    assert any(w.startswith("1 of ") and "Astro-QA eval groups are not held out" in w for w in report["warnings"])


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory, heldout: list[EvalItem]) -> tuple[Path, list[EvalItem]]:
    """An alpaca corpus whose train holds two real held-out items, reworded around and reformatted; and
    a distractor with the same question stem as a third item but other options."""
    import stellar_data

    choice = next(i for i in heldout if i.type == "single_choice_4" and i.lang == "en")
    subjective = next(i for i in heldout if i.type == "subjective" and i.lang == "zh")
    other = next(i for i in heldout if i.type == "single_choice_5" and i.lang == "en")
    options = " / ".join(f"({label.lower()}) {text.upper()}" for label, text in reversed(choice.options))
    records = [
        {"instruction": f"Quiz time!  {choice.question.upper()}", "input": options, "output": choice.answer},
        {"instruction": f"请解释：{subjective.question}", "input": "", "output": f"{subjective.answer}（完）"},
        {"instruction": other.question, "input": "A. something else\nB. entirely", "output": "A"},
        {"instruction": subjective.question, "input": "", "output": "一个完全不同的回答，与参考答案无关。"},
        *({"instruction": f"Say {n}.", "input": "", "output": str(n)} for n in range(4)),
    ]
    root = tmp_path_factory.mktemp("crafted")
    write_json(root / "src" / "data.json", records)
    corpus = stellar_data.build(
        alpaca_recipe(root, sources="src", extra="[split]\nvalidation_fraction = 0.0"), out=root / "out", workers=1
    )
    return corpus.path, [choice, subjective, other]


def test_fires_by_question_text_through_formatting_and_stays_quiet_on_stems(crafted) -> None:
    corpus, (choice, subjective, other) = crafted
    report = check_contamination([choice, subjective, other], run_for(corpus), "adapter")
    assert report["train_overlap"]["items"] == [
        {"id": choice.id, "by": ["question"]},
        {"id": subjective.id, "by": ["question"]},
    ]
    assert report["heldout_groups_not_in_corpus"]["count"] == 3  # the alpaca corpus holds nothing out
    assert len(report["warnings"]) == 2


def test_question_overlap_needs_the_whole_item() -> None:
    item = EvalItem("x", "x", "single_choice_4", "", "en", "Which is a star?", (("A", "Sun"), ("B", "Moon")), "A")
    train = pl.DataFrame({"instruction": ["which is a STAR", "Which is a star?"], "input": ["", "B) moon; A) sun"],
                          "output": ["", ""]})  # fmt: skip
    assert question_overlap([item], train) == {"x"}
    assert question_overlap([item], train.head(1)) == set()


def test_check_not_done_is_said_loudly(tmp_path: Path, heldout: list[EvalItem]) -> None:
    missing = check_contamination(heldout, {"config": {"data": str(tmp_path / "gone")}}, "adapter")
    assert missing["checked"] is False
    assert missing["warnings"] == [
        f"contamination check could not be done: the training data folder {tmp_path / 'gone'} is missing"
    ]
    no_record = check_contamination(heldout, {}, "some/adapter")
    assert no_record["checked"] is False and "no train_config.json" in no_record["warnings"][0]
    base_only = check_contamination(heldout, {}, None)
    assert base_only["checked"] is False and base_only["warnings"] == []


def test_a_corpus_changed_since_training_is_reported(
    small_corpus: Path, heldout: list[EvalItem], tmp_path: Path
) -> None:
    run = run_for(small_corpus) | {"corpus_manifest_sha256": "0" * 64}
    report = check_contamination(heldout[:3], run, "adapter")
    assert report["checked"] is True
    assert any("changed since training" in w for w in report["warnings"])


def test_a_datasets_folder_gets_the_text_check(tmp_path: Path) -> None:
    item = EvalItem("x", "x", "judgment", "", "en", "The Sun is a star of spectral type G.", (), "true")
    shutil.rmtree(tmp_path, ignore_errors=True)
    write_json(tmp_path / "train.json", [{"instruction": "Judge: the sun is a star of spectral type G", "input": "",
                                          "output": "True."}])  # fmt: skip
    report = check_contamination([item], {"config": {"data": str(tmp_path)}}, "adapter")
    assert report["checked"] is True and report["train_overlap"]["items"] == [{"id": "x", "by": ["question"]}]
    assert "heldout_groups_not_in_corpus" not in report
    assert json.dumps(report)  # JSON-ready


def test_a_datasets_folder_without_a_train_split_is_said_to_be_unchecked(tmp_path: Path) -> None:
    item = EvalItem("x", "x", "judgment", "", "en", "The Sun is a star of spectral type G.", (), "true")
    write_json(tmp_path / "test.json", [{"instruction": "The sun is a star of spectral type G", "output": "True."}])
    report = check_contamination([item], {"config": {"data": str(tmp_path)}}, "adapter")
    assert report["checked"] is False
    assert report["warnings"] == [f"contamination check could not be done: {tmp_path} has no train split"]


def test_a_merged_checkpoint_is_guarded_from_another_working_directory(
    small_corpus: Path,
    heldout: list[EvalItem],
    tiny_model: Path,
    lora_weights: Path,
    write_run_record,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trained in `train/` on `data` (a relative path), merged there with relative paths, evaluated from
    `elsewhere/`: the guard still finds the run record and the data, and sees the leaked item."""
    from rich.console import Console

    leaked = select(heldout, ("judgment",), 2)[0]
    train = tmp_path / "train"
    write_json(train / "data" / "train.json", [{"instruction": leaked.question, "input": "", "output": leaked.answer}])
    shutil.copytree(lora_weights, train / "adapter")
    write_run_record(train / "adapter", data="data")
    monkeypatch.chdir(train)
    merge(str(tiny_model), "adapter", "merged", dtype="fp32")

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    settings = EvalSettings(model_path="../train/merged", eval_path=str(small_corpus), types=("judgment",), limit=2)
    report = evaluate(settings, Console(file=io.StringIO()))
    contamination = report["contamination"]
    assert contamination["checked"] is True, contamination.get("reason")
    assert contamination["data"] == str((train / "data").resolve())
    assert contamination["train_overlap"]["items"] == [{"id": leaked.id, "by": ["question"]}]


def test_the_data_folder_is_found_resolved_or_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    item = EvalItem("x", "x", "judgment", "", "en", "The Sun is a star of spectral type G.", (), "true")
    write_json(tmp_path / "data" / "train.json", [{"instruction": item.question, "input": "", "output": "True."}])
    monkeypatch.chdir(tmp_path / "data")  # "data" as written is not found from here
    resolved = {"config": {"data": "data"}, "resolved": {"data": str(tmp_path / "data")}}
    assert check_contamination([item], resolved, "adapter")["checked"] is True
    missing = check_contamination([item], {"config": {"data": "data"}}, "adapter")
    assert missing["checked"] is False
    assert "relative path" in missing["reason"] and str(Path.cwd()) in missing["reason"]
    monkeypatch.chdir(tmp_path)  # as written, from the working directory training ran in
    assert check_contamination([item], {"config": {"data": "data"}}, "adapter")["checked"] is True
