"""Each recipe section's config dataclass is the one home of its defaults: the schema, which repeats
them for its readers, names the same keys with the same defaults, and a table that leaves a key out
gets the dataclass's default."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from stellar_data.config import from_table
from stellar_data.quarantine_limit import QualityConfig
from stellar_data.recipe import CorpusConfig, RunConfig, SourceSpec
from stellar_data.steps.decontaminate import DecontaminateConfig, EvalSetSpec
from stellar_data.steps.dedup import DedupConfig
from stellar_data.steps.holdout import HoldoutConfig
from stellar_data.steps.mix import CategoryTarget, MixConfig
from stellar_data.steps.neardup import NearDedupConfig
from stellar_data.steps.quality import QUALITY_STEPS
from stellar_data.steps.split import SplitConfig
from stellar_data.writers.splits import OutputConfig
from tests.conftest import ROOT

SCHEMA = json.loads((ROOT / "schemas" / "recipe.schema.json").read_text(encoding="utf-8"))
TOP = SCHEMA["properties"]
SOURCE = SCHEMA["$defs"]["source"]

SECTIONS: list[tuple[str, dict[str, Any], type, dict[str, str]]] = [
    # (where, schema object, dataclass, {schema key: field} where the loader renames or resolves it)
    ("corpus", TOP["corpus"], CorpusConfig, {}),
    ("quality", TOP["quality"], QualityConfig, {}),
    ("dedup", TOP["dedup"], DedupConfig, {}),
    ("near_dedup", TOP["near_dedup"], NearDedupConfig, {}),
    ("decontaminate", TOP["decontaminate"], DecontaminateConfig, {}),
    ("decontaminate.eval_sets[]", TOP["decontaminate"]["properties"]["eval_sets"]["items"], EvalSetSpec, {}),
    ("split", TOP["split"], SplitConfig, {}),
    ("output", TOP["output"], OutputConfig, {}),
    ("run", TOP["run"], RunConfig, {}),
    ("mix", TOP["mix"], MixConfig, {}),
    ("mix.categories.*", TOP["mix"]["properties"]["categories"]["additionalProperties"], CategoryTarget, {}),
    ("sources[].holdout", SOURCE["properties"]["holdout"], HoldoutConfig, {}),
    *((f"filters.{name}", TOP["filters"]["properties"][name], step.config, {}) for name, step in QUALITY_STEPS.items()),
    ("sources[]", SOURCE, SourceSpec, {"path": "paths", "templates": "expand"}),
]
LOADER_FIELDS = {SourceSpec: {"order", "filters"}}
"""Fields the loader fills that no recipe key names (a source's position in the recipe, the quality
steps that run on it)."""


def defaults(cls: type) -> dict[str, Any]:
    found = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            found[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            found[field.name] = field.default_factory()
    return found


@pytest.mark.parametrize(("where", "schema", "cls", "renamed"), SECTIONS, ids=[s[0] for s in SECTIONS])
def test_the_schema_names_the_dataclass_fields(where: str, schema: dict, cls: type, renamed: dict) -> None:
    keys = {renamed.get(key, key) for key in schema["properties"]}
    fields = {f.name for f in dataclasses.fields(cls)} - LOADER_FIELDS.get(cls, set())
    assert keys, where
    assert keys == fields, f"{where}: schema only {sorted(keys - fields)}, dataclass only {sorted(fields - keys)}"


@pytest.mark.parametrize(("where", "schema", "cls", "renamed"), SECTIONS, ids=[s[0] for s in SECTIONS])
def test_the_schema_defaults_are_the_dataclass_defaults(where: str, schema: dict, cls: type, renamed: dict) -> None:
    declared = {key: spec["default"] for key, spec in schema["properties"].items() if "default" in spec}
    own = defaults(cls)
    for key, value in declared.items():
        field = renamed.get(key, key)
        assert field in own, f"{where}.{key}: the schema has a default ({value!r}), the dataclass has none"
        expected = tuple(value) if isinstance(value, list) else value
        assert own[field] == expected, f"{where}.{key}: schema default {value!r}, dataclass {own[field]!r}"
    for field, value in own.items():  # a default the schema does not show would surprise its readers
        if value not in (None, (), {}) and field in {renamed.get(k, k) for k in schema["properties"]}:
            key = next(k for k in schema["properties"] if renamed.get(k, k) == field)
            assert key in declared, f"{where}.{key}: the dataclass default {value!r} is missing from the schema"


def test_a_table_leaving_keys_out_gets_the_dataclass_defaults() -> None:
    assert from_table(NearDedupConfig, {"threshold": 0.9}) == NearDedupConfig(threshold=0.9)
    assert from_table(HoldoutConfig, {"stratify": ["lang"]}).stratify == ("lang",)  # arrays become tuples
    assert from_table(HoldoutConfig, {}) == HoldoutConfig() and from_table(DedupConfig, None) == DedupConfig()
    assert from_table(CorpusConfig, {"name": "x"}, seed=3) == CorpusConfig("x", seed=3)
