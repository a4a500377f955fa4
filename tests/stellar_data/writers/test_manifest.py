"""The manifest schema (a published format) names exactly the counts and sections the step list
derives: a step that adds a count or a report must add it to schemas/manifest.schema.json too."""

from __future__ import annotations

import json

from stellar_data.pipeline import GLOBAL_STEPS
from stellar_data.steps.base import RECORD_COUNTS, StepStats
from tests.conftest import ROOT

SCHEMA = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text(encoding="utf-8"))


def derived_counts() -> list[str]:
    keys = list(RECORD_COUNTS)
    for step in GLOBAL_STEPS:
        keys += step.source_counts(StepStats(step.name, "any"))
    return [*keys, "records"]


def test_the_per_source_counts_are_the_ones_the_steps_derive() -> None:
    counts = SCHEMA["properties"]["sources"]["additionalProperties"]["properties"]["counts"]
    keys = derived_counts()
    assert len(keys) > len(RECORD_COUNTS) + 1
    assert sorted(counts["required"]) == sorted(keys)
    assert sorted(counts["properties"]) == sorted(keys)


def test_every_step_report_has_its_section() -> None:
    sections = [step.report_key for step in GLOBAL_STEPS if step.report_key is not None]
    assert sections == ["near_duplicates", "decontamination", "mix"]
    assert set(sections) <= set(SCHEMA["required"]) and set(sections) <= set(SCHEMA["properties"])
