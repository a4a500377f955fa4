"""Recipes: valid ones load into dataclasses; a bad one is one clear error naming the key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from stellar_data import RecipeError, load_recipe
from tests.conftest import ROOT
from tests.helpers import write_recipe

MINIMAL = """
[corpus]
name = "t"

[[sources]]
name = "general"
adapter = "alpaca"
path = "data.json"
category = "general"
lang = "en"
"""


def recipe_error(tmp_path: Path, body: str) -> str:
    path = write_recipe(tmp_path / "bad.toml", body)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert message.startswith(f"recipe {path}: ")
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["default.toml", "stellarspeak.toml"])
def test_shipped_recipes_are_valid(name: str) -> None:
    recipe = load_recipe(ROOT / "corpus" / name)
    assert recipe.protected_terms == ("蒭藁",)
    assert {s.category for s in recipe.sources} == {"astronomy", "math", "self_cognition", "general"}
    assert all(s.license for s in recipe.sources)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", MINIMAL))
    assert (recipe.seed, recipe.validation_fraction, recipe.max_quarantine_ratio, recipe.exact_dedup) == (
        0,
        0.02,
        0.05,
        True,
    )
    assert recipe.sources_dir == tmp_path
    assert recipe.sources[0].paths == ("data.json",) and recipe.sources[0].opencc == "none"
    overridden = load_recipe(tmp_path / "r.toml", sources_dir="/elsewhere", seed=9)
    assert (overridden.sources_dir, overridden.seed) == (Path("/elsewhere"), 9)
    assert len(recipe.sha256) == 64


def test_unknown_key_is_named(tmp_path: Path) -> None:
    message = recipe_error(tmp_path, MINIMAL + "shard_size = 3\n".replace("shard_size", "colour"))
    assert "sources[0] (source 'general')" in message and "colour" in message


def test_wrong_value_names_the_source_and_key(tmp_path: Path) -> None:
    message = recipe_error(tmp_path, MINIMAL.replace('lang = "en"', 'lang = "en"\nopencc = "s2t"'))
    assert "sources[0].opencc (source 'general')" in message and "'s2t'" in message


def test_wrong_type_of_a_top_level_key(tmp_path: Path) -> None:
    message = recipe_error(tmp_path, MINIMAL + "[split]\nvalidation_fraction = 1.5\n")
    assert "split.validation_fraction" in message


def test_missing_required_key(tmp_path: Path) -> None:
    assert "'category' is a required property" in recipe_error(tmp_path, MINIMAL.replace('category = "general"\n', ""))


def test_unknown_adapter_option(tmp_path: Path) -> None:
    message = recipe_error(tmp_path, MINIMAL + "[sources.options]\nstrip_prefixes = true\n")
    assert "sources[0].options" in message and "strip_prefixes" in message


def test_generic_adapter_needs_a_column_mapping(tmp_path: Path) -> None:
    message = recipe_error(tmp_path, MINIMAL.replace('"alpaca"', '"generic"'))
    assert "options" in message


def test_duplicate_source_names(tmp_path: Path) -> None:
    body = MINIMAL + MINIMAL.split('[corpus]\nname = "t"\n', 1)[1]
    assert "duplicate source name 'general'" in recipe_error(tmp_path, body)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert "invalid TOML" in recipe_error(tmp_path, "[corpus\nname = 1")
    with pytest.raises(RecipeError, match=r"nope\.toml: file not found"):
        load_recipe(tmp_path / "nope.toml")


def test_missing_protected_terms_file(tmp_path: Path) -> None:
    message = recipe_error(tmp_path, MINIMAL + '[normalize]\nprotected_terms = "terms.txt"\n')
    assert "normalize.protected_terms" in message and "terms.txt" in message


# --- #29: options checked at load, the seed's range, allow_outside_sources --------------------

GSM8K = MINIMAL.replace('adapter = "alpaca"', 'adapter = "gsm8k"')


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("答案是{answer}，{answr}", "names unknown field {answr}"),
        ("{answer} {", "is not a valid template"),
        ("The answer is {answer} }", "is not a valid template"),
        ("{{answer}}", "has no {answer} field"),
        ("{answer}{answer!r}", "no conversion or format spec"),
        ("{answer} of {0}", "names unknown field {0}"),
    ],
)
def test_a_bad_final_answer_template_is_one_error_at_load(tmp_path: Path, template: str, problem: str) -> None:
    """Templates holding `{answer}` pass the schema's pattern; before, they crashed at the first item
    (KeyError / ValueError)."""
    body = GSM8K + f"[sources.options]\nfinal_answer_template = {template!r}\n"

    message = recipe_error(tmp_path, body)

    assert "sources[0] (source 'general').options.final_answer_template: " in message
    assert repr(template) in message and problem in message


@pytest.mark.parametrize("template", ["答案是{answr}", "{answer"])
def test_a_template_without_answer_is_caught_by_the_schema(tmp_path: Path, template: str) -> None:
    body = GSM8K + f"[sources.options]\nfinal_answer_template = {template!r}\n"

    message = recipe_error(tmp_path, body)

    assert "sources[0].options.final_answer_template (source 'general'): " in message and repr(template) in message


def test_a_good_final_answer_template_loads(tmp_path: Path) -> None:
    body = GSM8K + "[sources.options]\nfinal_answer_template = '{{答案}}是 {answer}。'\n"
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", body))
    assert recipe.sources[0].options.final_answer_template == "{{答案}}是 {answer}。"


@pytest.mark.parametrize("seed", [-1, 2**63, True])
def test_a_seed_override_outside_the_schema_range_is_one_error(tmp_path: Path, seed: int) -> None:
    path = write_recipe(tmp_path / "r.toml", MINIMAL)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, seed=seed)
    assert str(caught.value) == (
        f"--seed {seed!r}: must be an integer from 0 to 9223372036854775807 (the recipe schema's corpus.seed)"
    )


def test_seed_overrides_at_the_ends_of_the_range(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r.toml", MINIMAL)
    assert [load_recipe(path, seed=s).seed for s in (0, 2**63 - 1)] == [0, 2**63 - 1]


def test_a_bad_seed_on_the_command_line_is_one_error_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stellar_data.cli import app

    path = write_recipe(tmp_path / "r.toml", MINIMAL)
    result = CliRunner().invoke(app, ["build", str(path), "--out", str(tmp_path / "c"), "--seed", "-5"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --seed -5: must be an integer from 0 to 9223372036854775807 (the recipe schema's corpus.seed)"
    )
    assert not (tmp_path / "c").exists()


def test_allow_outside_sources_defaults_to_false_and_leaves_the_hash_alone(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", MINIMAL))
    allowed = load_recipe(
        write_recipe(tmp_path / "a.toml", MINIMAL.replace('name = "t"', 'name = "t"\nallow_outside_sources = true'))
    )
    assert (recipe.allow_outside_sources, allowed.allow_outside_sources) == (False, True)
    # The recipe hash is the file's bytes: a key left out (default false) changes nothing.
    assert recipe.sha256 == hashlib.sha256((tmp_path / "r.toml").read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["default.toml", "stellarspeak.toml"])
def test_shipped_recipe_hashes_are_their_bytes(name: str) -> None:
    """So adding a schema key (allow_outside_sources) cannot change an existing recipe's hash."""
    path = ROOT / "corpus" / name
    assert load_recipe(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_step_reads_its_own_section(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", MINIMAL + "\n[dedup]\nexact = false\n"))
    assert recipe.section("dedup") == {"exact": False} and recipe.section("near_dedup") is None
    assert "sources" not in recipe.sections and recipe.section("corpus") == {"name": "t"}
