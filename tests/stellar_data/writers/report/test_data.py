"""The report's numbers, computed from a manifest alone."""

from __future__ import annotations

from typing import Any

from stellar_data.writers.report.data import (
    SOURCE_COUNTS,
    RuleCount,
    breakdowns,
    category_mix,
    quarantine_rules,
    source_rows,
)


def test_category_mix_sums_sources_before_and_after_mixing() -> None:
    def source(category: str, before: int, train: int) -> dict[str, Any]:
        return {"category": category, "counts": {"mix": {"before": before}, "records": {"train": train}}}

    manifest = {
        "sources": {"zh": source("general", 10, 30), "en": source("general", 5, 15), "m": source("math", 7, 7)},
        "mix": {"categories": {"general": {"target": 45}, "math": {"target": 7}}},
    }
    rows = category_mix(manifest)
    assert [(r.category, r.before, r.after, r.plan["target"]) for r in rows] == [
        ("general", 15, 45, 45),
        ("math", 7, 7, 7),
    ]
    assert [r.plan for r in category_mix({**manifest, "mix": None})] == [None, None]


def test_quarantine_rules_split_what_counts_toward_the_limit_from_deliberate_exclusions() -> None:
    manifest = {
        "sources": {
            "a": {"counts": {"quarantined": {"empty_option": 2}, "excluded": {"no_answer_key": 9}}},
            "b": {"counts": {"quarantined": {"empty_option": 1}, "excluded": {}}},
        },
        "quarantine": {"by_rule": {"duplicate": 4, "empty_option": 3, "no_answer_key": 9}},
    }
    assert quarantine_rules(manifest) == [
        RuleCount("no_answer_key", quarantined=0, deliberate=9),
        RuleCount("duplicate", quarantined=0, deliberate=4),
        RuleCount("empty_option", quarantined=3, deliberate=0),
    ]


def test_source_rows_give_every_listed_count_summing_rule_tables() -> None:
    counts = {
        "read": 12, "quarantined": {"empty_option": 2, "bad_json": 1}, "excluded": {"no_answer_key": 4},
        "filtered": {"refusal": 1}, "valid": 4, "duplicates": 1, "near_duplicates": 0, "held_out": 0,
        "decontaminated": 0, "kept": 3, "train": 2, "validation": 1, "records": {"train": 6, "validation": 1},
    }  # fmt: skip
    manifest = {
        "sources": {
            "a": {"category": "qa", "status": "ok", "counts": counts},
            "b": {"category": "qa", "status": "missing_optional", "counts": {**counts, "read": 0}},
        }
    }
    a, b = source_rows(manifest)
    assert list(a.counts) == [key for key, _ in SOURCE_COUNTS]
    assert a.counts["quarantined"] == 3 and a.counts["excluded"] == 4 and a.counts["filtered"] == 1
    assert a.counts["train_records"] == 6
    assert a.reasons == {"bad_json": 1, "empty_option": 2, "no_answer_key": 4, "refusal": 1}
    assert a.quarantine_ratio == 3 / 12 and b.quarantine_ratio is None


def test_breakdowns_follow_the_manifest_content_whatever_the_source_name() -> None:
    info = {
        "records": [
            {"split": "train", "lang": "en", "type": "choice", "subfield": "stars", "len": 3},
            {"split": "validation", "lang": "en", "type": "choice", "subfield": "stars", "len": 1},
        ],
        "held_out": [{"lang": "zh", "type": "choice", "subfield": "planets", "len": 2}],
    }
    assert breakdowns({"breakdown": {}}) == [] and breakdowns({}) == []
    (b,) = breakdowns({"breakdown": {"any_source": info}})
    assert b.source == "any_source"
    assert b.records == {("choice", "en", "train"): 3, ("choice", "en", "validation"): 1}
    assert b.held_out == {("choice", "zh", "held out"): 2}
    assert b.columns == [("train", "en"), ("validation", "en"), ("held out", "zh")]
    assert b.rows == [("choice", "planets", [0, 0, 2]), ("choice", "stars", [3, 1, 0])]


def test_the_source_table_shows_every_count_a_step_declares() -> None:
    from stellar_data.pipeline import GLOBAL_STEPS

    removals = [step.removes.count for step in GLOBAL_STEPS if step.removes is not None]
    shown = [key for key, _ in SOURCE_COUNTS]
    assert removals == ["duplicates", "near_duplicates", "held_out", "decontaminated"]
    assert shown[:3] == ["read", "quarantined", "excluded"] and shown[-2:] == ["train_records", "validation_records"]
    assert [key for key in shown if key in removals] == removals  # each, in pipeline order
