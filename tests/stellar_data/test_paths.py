"""Source and eval-set paths (paths.py), checked by plan_build before anything is read: inside the
sources directory unless the recipe allows otherwise, regular files (a folder only for astro_qa),
symlink loops named as such, each file read once and by one source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stellar_data import RecipeError, load_recipe, plan_build
from stellar_data.cli import app
from stellar_data.errors import SourceFileError
from tests.conftest import ROOT
from tests.helpers import write_json, write_recipe

RECORDS = [{"instruction": "What is a pulsar?", "input": "", "output": "A rotating neutron star."}]


def recipe_reading(tmp_path: Path, *paths: str, corpus: str = "", adapter: str = "alpaca", extra: str = "") -> Path:
    """A one-source recipe whose sources directory is tmp_path/src, reading `paths`."""
    (tmp_path / "src").mkdir(exist_ok=True)
    listed = ", ".join(f'"{p}"' for p in paths)
    return write_recipe(
        tmp_path / "recipe.toml",
        f"""
        [corpus]
        name = "t"
        sources_dir = "src"
        {corpus}

        [[sources]]
        name = "general"
        adapter = "{adapter}"
        path = [{listed}]
        category = "general"
        lang = "en"
        {extra}
        """,
    )


def plan_error(recipe: Path) -> str:
    with pytest.raises((SourceFileError, RecipeError)) as caught:
        plan_build(load_recipe(recipe))
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    """A file outside the sources directory."""
    return write_json(tmp_path / "elsewhere" / "data.json", RECORDS)


# --- paths leaving the sources directory ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "inner_dotdot", "absolute_glob", "dotdot_glob"])
def test_a_path_leaving_the_sources_directory_is_refused(tmp_path: Path, outside: Path, kind: str) -> None:
    (tmp_path / "src" / "a").mkdir(parents=True)
    pattern = {
        "absolute": str(outside),
        "dotdot": "../elsewhere/data.json",
        "inner_dotdot": "a/../../elsewhere/data.json",
        "absolute_glob": str(outside.parent / "*.json"),
        "dotdot_glob": "../elsewhere/*.json",
    }[kind]

    message = plan_error(recipe_reading(tmp_path, pattern))

    assert message.startswith("source 'general': ")
    assert f"resolves to {outside.resolve()}, outside the sources directory" in message
    assert message.endswith("; set corpus.allow_outside_sources = true to read it")


def test_etc_passwd_is_not_read(tmp_path: Path) -> None:
    message = plan_error(recipe_reading(tmp_path, "../../../../../../../../etc/passwd"))

    assert "resolves to /etc/passwd, outside the sources directory" in message


def test_a_symlink_inside_pointing_outside_is_refused(tmp_path: Path, outside: Path) -> None:
    recipe = recipe_reading(tmp_path, "data.json")
    (tmp_path / "src" / "data.json").symlink_to(outside)

    message = plan_error(recipe)

    assert message.startswith("source 'general': data.json resolves to ")
    assert str(outside.resolve()) in message


def test_a_symlink_inside_pointing_inside_is_read(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "data.json")
    write_json(tmp_path / "src" / "real" / "data.json", RECORDS)
    (tmp_path / "src" / "data.json").symlink_to(tmp_path / "src" / "real" / "data.json")

    (planned,) = plan_build(load_recipe(recipe)).files

    assert planned.file.relative == "data.json"


def test_allow_outside_sources_reads_them(tmp_path: Path, outside: Path) -> None:
    recipe = recipe_reading(tmp_path, str(outside), "../elsewhere/data.json", corpus="allow_outside_sources = true")

    plan = plan_build(load_recipe(recipe))

    # Both paths name one file: it is read once, under the first name.
    assert [p.file.relative for p in plan.files] == [outside.as_posix()]
    assert load_recipe(recipe).allow_outside_sources is True


def test_an_eval_set_outside_the_sources_directory_is_refused(tmp_path: Path, outside: Path) -> None:
    write_json(tmp_path / "src" / "data.json", RECORDS)
    write_json(tmp_path / "elsewhere" / "eval.json", [{"question": "q"}])
    recipe = recipe_reading(
        tmp_path,
        "data.json",
        extra='[[decontaminate.eval_sets]]\nname = "ev"\npath = "../elsewhere/eval.json"\nquestion = "question"',
    )

    message = plan_error(recipe)

    assert message.startswith("eval set 'ev': ../elsewhere/eval.json resolves to ")
    assert "outside the sources directory" in message


def test_a_folder_source_with_a_symlinked_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere" / "ZH").mkdir(parents=True)
    (tmp_path / "src" / "data" / "EN").mkdir(parents=True)
    (tmp_path / "src" / "data" / "ZH").symlink_to(tmp_path / "elsewhere" / "ZH")
    recipe = recipe_reading(tmp_path, "data", adapter="astro_qa")

    message = plan_error(recipe)

    assert message.startswith("source 'general': data/ZH resolves to ")


def test_the_shipped_recipe_over_the_real_sources_plans_as_before(shared_sources: Path) -> None:
    recipe = load_recipe(ROOT / "corpus" / "stellarspeak.toml", sources_dir=shared_sources)

    plan = plan_build(recipe)

    assert [(p.spec.name, p.file.relative) for p in plan.files] == [
        ("astro_qa", "Astro-QA/data"),
        ("gsm8k", "grade-school-math/grade_school_math/data/train.jsonl"),
        ("identity", "LLaMA-Factory/data/identity.json"),
        ("alpaca_zh", "LLaMA-Factory/data/alpaca_zh_demo.json"),
        ("alpaca_en", "LLaMA-Factory/data/alpaca_en_demo.json"),
    ]


def test_a_real_file_reached_by_dotdot_is_refused(shared_sources: Path, tmp_path: Path) -> None:
    """The real GSM8K file, named from a sources directory next to it: outside, so refused."""
    sources = shared_sources / "grade-school-math"
    recipe = write_recipe(
        tmp_path / "r.toml",
        """
        [corpus]
        name = "t"
        [[sources]]
        name = "gsm8k"
        adapter = "gsm8k"
        path = "../LLaMA-Factory/data/identity.json"
        category = "math"
        lang = "en"
        """,
    )

    with pytest.raises(SourceFileError, match=r"^source 'gsm8k': ../LLaMA-Factory/data/identity.json resolves to"):
        plan_build(load_recipe(recipe, sources_dir=sources))


# --- what a source path may be ------------------------------------------------------------------


def test_a_fifo_is_refused_up_front(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "x.jsonl")
    os.mkfifo(tmp_path / "src" / "x.jsonl")

    message = plan_error(recipe)

    assert message == "source 'general': x.jsonl is not a regular file (a FIFO)"


def test_a_fifo_matched_by_a_glob_is_refused(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "*.jsonl")
    os.mkfifo(tmp_path / "src" / "x.jsonl")

    assert plan_error(recipe) == "source 'general': x.jsonl is not a regular file (a FIFO)"


def test_a_device_is_refused(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "/dev/null", corpus="allow_outside_sources = true")

    assert plan_error(recipe) == "source 'general': /dev/null is not a regular file (a character device)"


def test_a_folder_is_refused_for_an_adapter_reading_files(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "data")
    (tmp_path / "src" / "data").mkdir()

    assert plan_error(recipe) == "source 'general': data is a folder; the alpaca adapter reads files"


def test_a_folder_is_fine_for_astro_qa() -> None:
    plan = plan_build(load_recipe(ROOT / "corpus" / "default.toml"))

    assert plan.files[0].file.relative == "Astro-QA/data" and plan.files[0].file.path.is_dir()


def test_a_symlink_loop_is_named(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "a")
    (tmp_path / "src" / "a").symlink_to("b")
    (tmp_path / "src" / "b").symlink_to("a")

    message = plan_error(recipe)

    assert message.startswith("source 'general': a: symlink loop (")
    assert "not found" not in message


def test_a_symlink_loop_matched_by_a_glob_is_named(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "*.json")
    (tmp_path / "src" / "a.json").symlink_to("b.json")
    (tmp_path / "src" / "b.json").symlink_to("a.json")

    assert "symlink loop" in plan_error(recipe)


def test_a_broken_symlink_is_named(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "data.json")
    (tmp_path / "src" / "data.json").symlink_to("gone.json")

    assert plan_error(recipe) == "source 'general': data.json: broken symlink (to gone.json)"


# --- each file read once, by one source ---------------------------------------------------------


def test_a_file_matched_by_two_globs_of_one_source_is_read_once(tmp_path: Path) -> None:
    recipe = recipe_reading(tmp_path, "*.json", "data.json", "./data.json", "d*.json")
    write_json(tmp_path / "src" / "data.json", RECORDS)
    write_json(tmp_path / "src" / "more.json", RECORDS)

    plan = plan_build(load_recipe(recipe))

    assert [(p.file.relative, p.index) for p in plan.files] == [("data.json", 0), ("more.json", 1)]


def test_overlapping_globs_build(tmp_path: Path) -> None:
    """Before: `AssertionError: duplicate record ids`."""
    recipe = recipe_reading(tmp_path, "*.json", "data.json")
    write_json(tmp_path / "src" / "data.json", RECORDS)

    result = CliRunner().invoke(app, ["build", str(recipe), "--out", str(tmp_path / "out"), "--workers", "1"])

    assert result.exit_code == 0, result.output


def test_the_same_file_in_two_sources_is_one_recipe_error(tmp_path: Path) -> None:
    write_json(tmp_path / "src" / "data.json", RECORDS)
    recipe = recipe_reading(
        tmp_path,
        "data.json",
        extra='[[sources]]\nname = "other"\nadapter = "alpaca"\npath = "*.json"\ncategory = "general"\nlang = "en"',
    )

    message = plan_error(recipe)

    assert message == (
        f"recipe {recipe}: sources 'general' and 'other' both read data.json; a file belongs to one source"
    )


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["build", "check"])
def test_a_path_problem_is_one_error_line_and_exit_2(tmp_path: Path, command: str) -> None:
    recipe = recipe_reading(tmp_path, "../../../../../../../../etc/passwd")
    args = [command, str(recipe)] + (["--out", str(tmp_path / "out")] if command == "build" else [])

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: source 'general': ") and "outside" in errors[0]
    assert errors[0].endswith("set corpus.allow_outside_sources = true to read it")
    if command == "build":
        assert result.output.strip() == errors[0] and not (tmp_path / "out").exists()
