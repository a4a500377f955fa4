"""`stellar-data check`: a source whose file fails shows `error` in its status column (not `ok`),
the error is one line, and the exit code is 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from stellar_data.check import check
from stellar_data.cli import app
from tests.helpers import write_json, write_recipe

runner = CliRunner()
GOOD = [{"instruction": "What is a pulsar?", "input": "", "output": "A rotating neutron star."}]


def two_source_recipe(tmp_path: Path) -> Path:
    write_json(tmp_path / "good.json", GOOD)
    (tmp_path / "bad.json").write_text("[{oops", encoding="utf-8")
    return write_recipe(
        tmp_path / "recipe.toml",
        """
        [corpus]
        name = "t"

        [[sources]]
        name = "fine"
        adapter = "alpaca"
        path = "good.json"
        category = "general"
        lang = "en"

        [[sources]]
        name = "broken"
        adapter = "alpaca"
        path = "bad.json"
        category = "general"
        lang = "en"
        """,
    )


def status_of(output: str, source: str) -> str:
    row = next(line for line in output.splitlines() if line.startswith(f"│ {source} "))
    return row.strip("│ ").rsplit("│", 1)[1].strip()


def test_a_source_whose_file_fails_has_status_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(two_source_recipe(tmp_path)), "--workers", "1"])

    assert result.exit_code == 2
    assert status_of(result.output, "broken") == "error"
    assert status_of(result.output, "fine") == "ok"
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: bad.json: invalid JSON at line 1")
    assert "recipe and sources ok" not in result.output


def test_the_report_names_the_failing_source(tmp_path: Path) -> None:
    report = check(two_source_recipe(tmp_path), workers=1)

    by_name = {s.name: s for s in report.sources}
    assert (by_name["broken"].status, by_name["fine"].status) == ("error", "ok")
    assert len(by_name["broken"].errors) == 1 and by_name["broken"].errors[0].startswith("bad.json: ")
    assert not by_name["broken"].ok and by_name["fine"].ok and not report.ok


def test_real_data_beside_a_broken_file(shared_sources: Path, tmp_path: Path) -> None:
    """Real GSM8K lines read fine (`ok`) next to a truncated JSON file (`error` in its row)."""
    sources = tmp_path / "src"
    (sources / "gsm8k").mkdir(parents=True)
    lines = (shared_sources / "grade-school-math/grade_school_math/data/train.jsonl").read_text().splitlines()
    (sources / "gsm8k" / "train.jsonl").write_text("\n".join(lines[:50]) + "\n", encoding="utf-8")
    (sources / "alpaca.json").write_text(json.dumps(GOOD)[:-3], encoding="utf-8")
    recipe = write_recipe(
        tmp_path / "recipe.toml",
        """
        [corpus]
        name = "t"
        sources_dir = "src"

        [[sources]]
        name = "gsm8k"
        adapter = "gsm8k"
        path = "gsm8k/train.jsonl"
        category = "math"
        lang = "en"

        [[sources]]
        name = "alpaca"
        adapter = "alpaca"
        path = "alpaca.json"
        category = "general"
        lang = "en"
        """,
    )

    result = runner.invoke(app, ["check", str(recipe), "--workers", "1"])

    assert result.exit_code == 2
    assert (status_of(result.output, "gsm8k"), status_of(result.output, "alpaca")) == ("ok", "error")
