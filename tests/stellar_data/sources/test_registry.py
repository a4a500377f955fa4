"""The recipe schema and the adapter registry say the same: the adapters, their options, the defaults.

The schema is written by hand (it carries the descriptions a recipe author reads); this test is what
keeps it and the options dataclasses, the one home of the defaults, from drifting apart.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from stellar_data.config import from_table
from stellar_data.errors import RecipeError
from stellar_data.recipe import load_recipe
from stellar_data.resources import load_schema
from stellar_data.sources import ADAPTERS
from stellar_data.sources.alpaca import AlpacaOptions
from stellar_data.sources.astro_qa import AstroQaOptions
from stellar_data.sources.gsm8k import Gsm8kOptions
from tests.helpers import write_recipe

SCHEMA = load_schema("recipe.schema.json")
SOURCE = SCHEMA["$defs"]["source"]


def options_schema(adapter: str) -> dict[str, Any]:
    """The `options` definition the schema applies to sources of this adapter (its allOf if/then)."""
    (then,) = [c["then"] for c in SOURCE["allOf"] if c["if"]["properties"]["adapter"]["const"] == adapter]
    ref = then["properties"]["options"]["$ref"]
    assert ref.startswith("#/$defs/")
    return SCHEMA["$defs"][ref.removeprefix("#/$defs/")]


def frozen(value: Any) -> Any:
    """JSON lists as tuples, as from_table builds them."""
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: frozen(v) for k, v in value.items()}
    return value


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def test_the_schema_names_exactly_the_registered_adapters() -> None:
    assert SOURCE["properties"]["adapter"]["enum"] == list(ADAPTERS)
    conditioned = [c["if"]["properties"]["adapter"]["const"] for c in SOURCE["allOf"]]
    assert sorted(conditioned) == sorted(ADAPTERS)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_the_schema_options_are_the_dataclass_fields_with_the_same_defaults(name: str) -> None:
    info = ADAPTERS[name]
    schema = options_schema(name)
    assert schema["additionalProperties"] is False
    fields = {f.name: f for f in dataclasses.fields(info.options)}
    assert set(schema["properties"]) == set(fields)
    for key, spec in schema["properties"].items():
        if "default" in spec:
            assert frozen(spec["default"]) == default_of(fields[key]), f"{name}.options.{key}"
    required = {key for key, f in fields.items() if default_of(f) is dataclasses.MISSING}
    assert set(schema.get("required", ())) == required
    then = next(c["then"] for c in SOURCE["allOf"] if c["if"]["properties"]["adapter"]["const"] == name)
    assert ("options" in then.get("required", ())) == bool(required)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_what_the_registry_says_of_an_adapter_fits_its_options_and_the_schema(name: str) -> None:
    info = ADAPTERS[name]
    assert info.name == name and dataclasses.is_dataclass(info.options)
    assert info.options.__dataclass_params__.frozen
    fields = {f.name: f for f in dataclasses.fields(info.options)}
    for key in info.path_options:
        assert default_of(fields[key]) is None, f"{name}.options.{key}: a file option defaults to no file"
    stratify = SOURCE["properties"]["holdout"]["properties"]["stratify"]
    assert set(info.holdout_strata) <= set(stratify["items"]["enum"])
    if info.structured:
        assert list(info.holdout_strata) == stratify["default"]


def test_from_table_builds_the_dataclass_and_refuses_an_unknown_key() -> None:
    assert from_table(AlpacaOptions, {}) == AlpacaOptions()
    options = from_table(AstroQaOptions, {"languages": ["en"], "en_only_explanations": True})
    assert options == AstroQaOptions(languages=("en",), en_only_explanations=True)
    with pytest.raises(ValueError, match=r"unknown key 'strip'"):
        from_table(AlpacaOptions, {"strip": True})


def test_a_recipe_source_holds_its_adapters_options(tmp_path: Path) -> None:
    (tmp_path / "cells.toml").write_text("", encoding="utf-8")
    body = """
[corpus]
name = "t"

[[sources]]
name = "math"
adapter = "gsm8k"
path = "m.jsonl"
category = "math"
lang = "en"
options = { strip_subquestions = false }

[[sources]]
name = "astro"
adapter = "astro_qa"
path = "data"
category = "astronomy"
lang = "auto"
options = { date_cells = "cells.toml", types = ["judgment"] }
"""
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", body))
    assert recipe.source("math").options == Gsm8kOptions(strip_subquestions=False)
    astro = recipe.source("astro").options
    assert astro == AstroQaOptions(date_cells=str((tmp_path / "cells.toml").resolve()), types=("judgment",))


def test_holdout_needs_a_structured_adapter_and_stratifies_by_its_strata(tmp_path: Path) -> None:
    base = """
[corpus]
name = "t"

[[sources]]
name = "s"
adapter = "{adapter}"
path = "data"
category = "astronomy"
lang = "auto"

[sources.holdout]
fraction = 0.2
"""
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", base.format(adapter="astro_qa")))
    assert recipe.sources[0].holdout is not None
    assert recipe.sources[0].holdout.stratify == ADAPTERS["astro_qa"].holdout_strata
    with pytest.raises(RecipeError, match=r"holdout: needs structured items \(adapter astro_qa\)"):
        load_recipe(write_recipe(tmp_path / "r.toml", base.format(adapter="alpaca")))
