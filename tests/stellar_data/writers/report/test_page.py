"""report.html: one self-contained page (charts embedded as PNG data: URIs), byte-identical for the same
inputs, with token lengths when given a tokenizer; `stellar-data report DIR` regenerates it."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from typer.testing import CliRunner

import stellar_data as sd
from stellar_data.cli import app
from stellar_data.writers.report import REPORT_NAME, write_report
from tests.conftest import ROOT

IMAGE = '<img src="data:image/png;base64,'
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    return sd.build(ROOT / "corpus" / "default.toml", out=tmp_path_factory.mktemp("report") / "c", workers=1)


@pytest.fixture(scope="module")
def tokenizer_json(corpus: sd.Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BPE tokenizer trained on the corpus itself (no download)."""
    texts = [t for column in ("instruction", "input", "output") for t in corpus.table.column(column).to_pylist() if t]
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        texts, trainer=trainers.BpeTrainer(vocab_size=200, special_tokens=["[UNK]"], show_progress=False)
    )
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def categories(manifest: dict[str, Any]) -> set[str]:
    return {source["category"] for source in manifest["sources"].values()}


def test_the_report_is_one_self_contained_page_with_charts(corpus: sd.Corpus) -> None:
    path = write_report(corpus.path, corpus.manifest)

    assert path == corpus.path / REPORT_NAME and path.is_file()
    page = path.read_text(encoding="utf-8")
    assert page.count(IMAGE) >= 4
    for external in ('src="http', "src='http", 'href="http', "<script src", "<link", "url("):
        assert external not in page
    for section in ("Category mix", "Lengths", "Quarantine reasons", "Duplicate rates", "Astro-QA breakdown"):
        assert f"<h2>{section}</h2>" in page
    assert all(category in page for category in categories(corpus.manifest))
    m = corpus.manifest
    assert m["corpus"] in page and m["recipe"]["sha256"][:16] in page and str(m["seed"]) in page
    assert "Token lengths" not in page
    assert m["volatile"]["built_at"] not in page  # nothing volatile: the page must not change between rebuilds


def test_the_report_tables_show_rules_sources_and_subfields(corpus: sd.Corpus) -> None:
    page = write_report(corpus.path, corpus.manifest).read_text(encoding="utf-8")

    assert all(rule in page for rule in corpus.manifest["quarantine"]["by_rule"])
    assert all(f"<td>{source}</td>" in page for source in corpus.manifest["sources"])
    subfields = {row["subfield"] for row in corpus.manifest["breakdown"]["astro_qa"]["records"] if row["subfield"]}
    assert subfields and all(f"<td>{subfield}</td>" in page for subfield in subfields)  # Chinese: tables only


def test_the_report_is_byte_identical_across_calls_and_rebuilds(corpus: sd.Corpus, tmp_path: Path) -> None:
    first = write_report(corpus.path, corpus.manifest).read_bytes()
    assert write_report(corpus.path, corpus.manifest).read_bytes() == first

    rebuilt = sd.build(ROOT / "corpus" / "default.toml", out=tmp_path / "again", workers=1)
    # The build renders its page beside the writers, before the shards exist: the same bytes as a page
    # rendered from the finished corpus (the shards and the manifest with its file facts).
    assert (rebuilt.path / REPORT_NAME).read_bytes() == first
    assert write_report(rebuilt.path, rebuilt.manifest).read_bytes() == first


def test_a_tokenizer_adds_token_lengths(corpus: sd.Corpus, tokenizer_json: Path) -> None:
    plain = write_report(corpus.path, corpus.manifest).read_text(encoding="utf-8")

    page = write_report(corpus.path, corpus.manifest, tokenizer=tokenizer_json).read_text(encoding="utf-8")
    assert "Token lengths (tokenizer.json)" in page and "total &gt; 512" in page
    assert page.count(IMAGE) == plain.count(IMAGE) + 1
    # a folder holding tokenizer.json works too, and gives the same charts
    from_folder = write_report(corpus.path, corpus.manifest, tokenizer=tokenizer_json.parent).read_text("utf-8")
    assert re.findall(r"base64,[^\"]+", from_folder) == re.findall(r"base64,[^\"]+", page)


@pytest.mark.parametrize("bad", ["missing.json", "empty_folder", "not_a_tokenizer.json"])
def test_a_bad_tokenizer_path_is_an_error_naming_it(corpus: sd.Corpus, tmp_path: Path, bad: str) -> None:
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "not_a_tokenizer.json").write_text('{"model": "none"}', encoding="utf-8")
    path = tmp_path / bad

    with pytest.raises(sd.StellarDataError, match=f"tokenizer {re.escape(str(path))}: "):
        write_report(corpus.path, corpus.manifest, tokenizer=path)


def test_without_a_mix_the_report_shows_train_before_only(corpus: sd.Corpus, tmp_path: Path) -> None:
    manifest = copy.deepcopy(corpus.manifest)
    manifest["mix"] = None
    manifest["breakdown"] = {}

    page = write_report(corpus.path, manifest).read_text(encoding="utf-8")
    assert "The recipe has no [mix] section" in page and "target share" not in page
    assert "Astro-QA breakdown" not in page


def test_the_breakdown_section_follows_the_manifest_not_a_source_name(corpus: sd.Corpus) -> None:
    manifest = copy.deepcopy(corpus.manifest)
    manifest["breakdown"] = {"renamed": manifest["breakdown"]["astro_qa"]}

    page = write_report(corpus.path, manifest).read_text(encoding="utf-8")
    assert "<h2>Astro-QA breakdown</h2>" in page and "<h3>renamed</h3>" in page and "<h3>astro_qa</h3>" not in page


def test_cli_report_rewrites_the_page_and_prints_its_path(corpus: sd.Corpus, tokenizer_json: Path) -> None:
    page = corpus.path / REPORT_NAME
    page.unlink(missing_ok=True)

    result = runner.invoke(app, ["report", str(corpus.path)])
    assert result.exit_code == 0, result.output
    assert page.is_file() and str(page) in result.output

    result = runner.invoke(app, ["report", str(corpus.path), "--tokenizer", str(tokenizer_json)])
    assert result.exit_code == 0, result.output
    assert "Token lengths" in page.read_text(encoding="utf-8")
    # The manifest's checksum follows the regenerated page.
    entry = sd.load(corpus.path).manifest["files"][REPORT_NAME]
    assert entry["sha256"] == hashlib.sha256(page.read_bytes()).hexdigest() and entry["bytes"] == page.stat().st_size


def test_cli_report_errors_are_one_line(corpus: sd.Corpus, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "not a built corpus" in result.output
    assert not (tmp_path / REPORT_NAME).exists()

    result = runner.invoke(app, ["report", str(corpus.path), "--tokenizer", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: tokenizer ") and "nope.json" in lines[0]
