"""Recipes: valid ones load into dataclasses; a bad one is one clear error naming the key."""

from __future__ import annotations

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
