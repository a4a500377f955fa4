"""The Arrow record schema mirrors schemas/record.schema.json exactly."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from stellar_data.record import QUARANTINE_FIELDS, QUARANTINE_SCHEMA, RECORD_FIELDS, RECORD_SCHEMA, TEXT_FIELDS
from stellar_data.resources import schema_path

JSON_SCHEMA = json.loads(schema_path("record.schema.json").read_text(encoding="utf-8"))


def _json_types(rules: dict) -> list[str]:
    types = rules["type"]
    return [types] if isinstance(types, str) else list(types)


def test_schema_file_is_the_one_in_the_repository() -> None:
    assert schema_path("record.schema.json").parent.name in {"schemas", "_schemas"}


def test_field_names_equal_required_in_order() -> None:
    assert list(RECORD_SCHEMA.names) == JSON_SCHEMA["required"]


def test_field_names_equal_properties_in_order() -> None:
    assert list(RECORD_SCHEMA.names) == list(JSON_SCHEMA["properties"])


def test_record_fields_tuple_matches_schema() -> None:
    assert tuple(RECORD_SCHEMA.names) == RECORD_FIELDS


def test_json_schema_forbids_extra_properties() -> None:
    assert JSON_SCHEMA["additionalProperties"] is False


@pytest.mark.parametrize("name", list(RECORD_SCHEMA.names))
def test_nullability_matches_json_type(name: str) -> None:
    admits_null = "null" in _json_types(JSON_SCHEMA["properties"][name])
    assert RECORD_SCHEMA.field(name).nullable == admits_null


@pytest.mark.parametrize("name", list(RECORD_SCHEMA.names))
def test_arrow_type_matches_json_type(name: str) -> None:
    json_types = set(_json_types(JSON_SCHEMA["properties"][name])) - {"null"}
    arrow_type = RECORD_SCHEMA.field(name).type
    if json_types == {"string"}:
        assert pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    elif json_types == {"integer"}:
        assert pa.types.is_integer(arrow_type)
    else:
        pytest.fail(f"{name}: unexpected JSON type {json_types}")


def test_nullable_fields_are_exactly_template_and_original_id() -> None:
    assert {f.name for f in RECORD_SCHEMA if f.nullable} == {"template_id", "original_id"}


def test_text_fields_are_record_fields() -> None:
    assert TEXT_FIELDS == ("instruction", "input", "output")
    assert set(TEXT_FIELDS) <= set(RECORD_SCHEMA.names)


def test_quarantine_schema_has_reason_columns() -> None:
    for name in ("source", "file", "location", "rule", "message"):
        assert name in QUARANTINE_SCHEMA.names
        assert pa.types.is_string(QUARANTINE_SCHEMA.field(name).type)
        assert not QUARANTINE_SCHEMA.field(name).nullable
    assert tuple(QUARANTINE_SCHEMA.names) == QUARANTINE_FIELDS


def test_quarantine_schema_deliberate_flag_is_boolean() -> None:
    assert QUARANTINE_SCHEMA.field("deliberate").type == pa.bool_()
    assert not QUARANTINE_SCHEMA.field("deliberate").nullable
