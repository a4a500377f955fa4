"""Recipe tables -> frozen config dataclasses. The dataclass is the one home of a setting's default:
a key the table leaves out takes the field's default, so no loader writes a default again (the
schema repeats them for its readers, and tests/stellar_data/test_config.py checks that it agrees)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C")


def from_table(cls: type[C], table: dict[str, Any] | None, **given: Any) -> C:
    """`cls` built from a validated recipe table (TOML arrays become tuples where the field is a tuple),
    then `given` (values the loader resolved itself). A key that is no field of `cls` is a ValueError:
    in a recipe the schema refuses it first, so it is a bug (or a typo in a caller's table)."""
    names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table or {}) - names)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} for {cls.__name__} (allowed: {', '.join(sorted(names))})")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if table is not None and field.name in table:
            value = table[field.name]
            values[field.name] = tuple(value) if isinstance(value, list) and _is_tuple(field) else value
    return cls(**(values | given))


def _is_tuple(field: dataclasses.Field[Any]) -> bool:
    return str(field.type).startswith("tuple")
