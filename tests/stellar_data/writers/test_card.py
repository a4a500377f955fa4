"""The dataset card (README.md of a corpus): its per-source table shows every count the steps
declare (what was read, what each filter removed, what was written), with the manifest's values."""

from __future__ import annotations

import pytest

import stellar_data as sd
from stellar_data.pipeline import GLOBAL_STEPS
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    return sd.build(ROOT / "corpus" / "default.toml", out=tmp_path_factory.mktemp("c") / "corpus", workers=1)


def source_table(card: str) -> list[list[str]]:
    section = card.split("## Sources", 1)[1].strip().split("\n\n", 1)[0]  # up to the next blank line
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows if not row.startswith("| ---")]


def test_the_source_table_has_a_column_per_removal_with_the_manifest_counts(built: sd.Corpus) -> None:
    header, *rows = source_table((built.path / "README.md").read_text(encoding="utf-8"))
    removals = [step.removes for step in GLOBAL_STEPS if step.removes is not None]
    assert removals and [r.label for r in removals] == ["duplicates", "near duplicates", "held out", "decontaminated"]
    assert header[:5] == ["source", "category", "licence", "upstream (pinned)", "items read"]
    assert all(r.label in header for r in removals)
    assert header[-2:] == ["train records", "validation records"]
    sources = built.manifest["sources"]
    assert [row[0] for row in rows] == list(sources)
    for row in rows:
        counts = sources[row[0]]["counts"]
        cells = dict(zip(header, row, strict=True))
        assert cells["items read"] == str(counts["read"])
        for removal in removals:
            assert cells[removal.label] == str(counts[removal.count]), (row[0], removal.label)
        assert cells["train records"] == str(counts["records"]["train"])
    held = {row[0]: row[header.index("held out")] for row in rows}
    assert held["astro_qa"] != "0"  # the default recipe holds Astro-QA items out
