"""records.py: one fold of records for the ingest workers and the decontamination step. On real
Chinese text (the Alpaca demo, written in traditional characters) of a source OpenCC already
converted and of one it did not, the step's fold (rows of several sources at once, in any order)
gives the hashes the workers' fold gave: the same eval-gram hits and MinHash signatures. And the
rule is t2s only for a source whose `opencc` is "none"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import opencc
import polars as pl
import pytest

import stellar_data as sd
from stellar_data.ingest import IngestTask, ingest
from stellar_data.similarity.eval_index import EVAL_GRAMS, GramIndex, eval_items
from stellar_data.similarity.fold import Grams, fold_hashes
from stellar_data.similarity.minhash import SIGNATURE, signatures
from stellar_data.similarity.records import FOLD_SEED, fold_records, record_text
from stellar_data.steps.decontaminate import DecontaminateConfig
from tests.helpers import write_json, write_recipe

ITEMS = 200
QUESTIONS = 40


@pytest.fixture(scope="module")
def built(shared_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[sd.Recipe, pl.DataFrame, GramIndex]:
    """(recipe, every record as the workers wrote it, the eval index they looked records up in)."""
    root = tmp_path_factory.mktemp("fold_records")
    demo = json.loads((shared_sources / "LLaMA-Factory/data/alpaca_zh_demo.json").read_text(encoding="utf-8"))[:ITEMS]
    s2t = opencc.OpenCC("s2t.json")
    traditional = [{key: s2t.convert(value) for key, value in item.items()} for item in demo]
    write_json(root / "converted.json", traditional)
    write_json(root / "unconverted.json", traditional)
    recipe = sd.load_recipe(
        write_recipe(
            root / "recipe.toml",
            f"""
            [corpus]
            name = "fold"
            seed = 5
            sources_dir = "{root.as_posix()}"

            [[sources]]
            name = "converted"
            adapter = "alpaca"
            path = "converted.json"
            category = "general"
            lang = "zh"
            opencc = "t2s"

            [[sources]]
            name = "unconverted"
            adapter = "alpaca"
            path = "unconverted.json"
            category = "general"
            lang = "zh"

            [near_dedup]
            """,
        )
    )
    questions = [item["instruction"] for item in demo[:QUESTIONS]]  # as written: simplified
    items = eval_items(questions, [[]] * QUESTIONS, [str(i) for i in range(QUESTIONS)], "ev", DecontaminateConfig())
    index = GramIndex.of(items)
    results = [
        ingest(IngestTask(p.spec, p.file, p.index, recipe.seed, recipe.protected_terms, None, recipe.near_dedup, index))
        for p in sd.plan_build(recipe).files
    ]
    records = pl.concat([r.records for r in results if r.records is not None], how="diagonal_relaxed")
    return recipe, records, index


def opencc_of(recipe: sd.Recipe) -> dict[str, str]:
    return {spec.name: spec.opencc for spec in recipe.sources}


def test_the_steps_fold_of_mixed_rows_gives_the_workers_hashes(built) -> None:
    recipe, records, index = built
    order = np.random.default_rng(3).permutation(records.height)
    mixed = records[order]  # rows of both sources at once, as the step gathers the few it folds again
    grams = Grams(fold_records(mixed, opencc_of(recipe), recipe.protected_terms))
    assert index.hits(grams).to_list() == mixed[EVAL_GRAMS].to_list()
    assert np.array_equal(signatures(grams, recipe.near_dedup), mixed[SIGNATURE].to_numpy())
    found = mixed.filter(pl.col(EVAL_GRAMS).list.len() > 0).group_by("source").len()
    assert dict(found.iter_rows()) == {"converted": QUESTIONS, "unconverted": QUESTIONS}  # not vacuous


def test_t2s_only_for_a_source_not_converted_with_opencc(built) -> None:
    recipe, records, index = built
    for spec in recipe.sources:
        own = records.filter(pl.col("source") == spec.name)
        expected = fold_hashes(
            record_text(own),
            convert_traditional=spec.opencc == "none",
            protected_terms=recipe.protected_terms,
            seed=FOLD_SEED,
        )
        got = fold_records(own, opencc_of(recipe), recipe.protected_terms)
        assert np.array_equal(got.hashes, expected.hashes) and np.array_equal(got.offsets, expected.offsets)
    unconverted = records.filter(pl.col("source") == "unconverted")
    as_written = fold_hashes(record_text(unconverted), convert_traditional=False, seed=FOLD_SEED)
    held = index.hits(Grams(as_written)).list.len() > 0
    assert held.sum() < QUESTIONS  # its text is traditional: the fold's t2s is what finds the questions
