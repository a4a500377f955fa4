"""The stellar-data command line: build and check, with one-line errors and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from stellar_data.cli import app
from tests.conftest import ROOT
from tests.helpers import alpaca_recipe, write_json

runner = CliRunner()
DEFAULT_RECIPE = str(ROOT / "corpus" / "default.toml")


def test_build_writes_the_corpus_and_prints_the_counts(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["build", DEFAULT_RECIPE, "--out", str(tmp_path / "c"), "--workers", "1", "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "astro_qa" in result.output and "astro_qa_heldout" in result.output and "quarantine" in result.output
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["volatile"]["workers"] == 1


def test_check_reads_everything_and_writes_nothing(tmp_path: Path) -> None:
    before = sorted(Path.cwd().iterdir())
    result = runner.invoke(app, ["check", DEFAULT_RECIPE])
    assert result.exit_code == 0, result.output
    assert "recipe and sources ok" in result.output
    assert "empty_option 1," in result.output and "no_answer_key 16 (excluded)" in result.output
    assert sorted(Path.cwd().iterdir()) == before


def test_check_reports_every_bad_file_and_the_quarantine_ratio(tmp_path: Path) -> None:
    write_json(
        tmp_path / "data.json",
        [{"instruction": "q", "input": "", "output": ""}, {"instruction": "q", "input": "", "output": "a"}],
    )
    result = runner.invoke(app, ["check", str(alpaca_recipe(tmp_path))])
    assert result.exit_code == 2
    assert "over limit" in result.output and "invalid_output 1" in result.output

    (tmp_path / "data.json").write_text("[{oops", encoding="utf-8")
    result = runner.invoke(app, ["check", str(alpaca_recipe(tmp_path))])
    assert result.exit_code == 2
    assert "error: data.json: invalid JSON at line 1" in result.output


def test_a_bad_recipe_is_one_error_line(tmp_path: Path) -> None:
    recipe = alpaca_recipe(tmp_path, source_extra='lang_code = "en"')
    result = runner.invoke(app, ["build", str(recipe), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: recipe ") and "lang_code" in lines[0]
    assert not (tmp_path / "c").exists()


def test_a_missing_source_file_names_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", str(alpaca_recipe(tmp_path / "src")), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "source 'general': file not found" in result.output and "data.json" in result.output


def test_brackets_in_an_error_are_printed_as_written(tmp_path: Path) -> None:
    """A path or message holding `[corpus]` or `[/x]` is printed verbatim, never read as rich markup
    (which dropped `[corpus]` and crashed with a traceback on `[/x]`)."""
    folder = tmp_path / "a[/x]b" / "[corpus]"
    result = runner.invoke(app, ["build", str(alpaca_recipe(folder)), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"{folder}" in result.output.replace("\n", "")


def test_a_plan_without_a_mix_says_so_with_its_brackets(tmp_path: Path) -> None:
    write_json(tmp_path / "data.json", [{"instruction": "Say hi.", "input": "", "output": "hi"}])
    result = runner.invoke(app, ["plan", str(alpaca_recipe(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "the recipe has no [mix] section" in result.output
