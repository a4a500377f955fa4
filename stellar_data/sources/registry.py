"""The adapters a recipe can name, each with everything the rest of the toolkit needs to know about it.

A new adapter is one file (its reader and its frozen options dataclass, the one home of its option
defaults), one `AdapterInfo` here, and its `options` in schemas/recipe.schema.json (a test checks
the schema against this registry). Nothing outside this package checks an adapter by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .alpaca import AlpacaOptions, read_alpaca
from .astro_qa import AstroQaOptions, read_astro_qa
from .base import Adapter
from .generic import GenericOptions, read_generic
from .gsm8k import Gsm8kOptions, check_gsm8k_options, read_gsm8k
from .identity import IdentityOptions, read_identity


def _no_problem(options: Any) -> str | None:
    return None


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    """The recipe's `adapter` value."""
    reader: Adapter
    options: type
    """Its options dataclass, built from the recipe's `options` table by `config.from_table`."""
    structured: bool = False
    """Items carry the structured fields (`_x_*` columns) hold-out and template expansion work on."""
    line_splittable: bool = False
    """Each JSON Lines line is read on its own: a large file can be read as line spans, several
    tasks in parallel (SourceFile.span)."""
    folder: bool = False
    """The source path is a folder, read whole (Astro-QA: ZH/ and EN/)."""
    path_options: tuple[str, ...] = ()
    """Options naming files, resolved against the recipe's folder when the recipe is loaded (their
    default is None: no file)."""
    holdout_strata: tuple[str, ...] = ()
    """The structured fields hold-out stratifies by unless the recipe says otherwise."""
    check: Callable[[Any], str | None] = _no_problem
    """What the schema cannot say about the options: the problem, starting with the option's name,
    or None. Run when the recipe is loaded, before anything is read."""


ADAPTERS: dict[str, AdapterInfo] = {
    info.name: info
    for info in (
        AdapterInfo("alpaca", read_alpaca, AlpacaOptions, line_splittable=True),
        AdapterInfo("gsm8k", read_gsm8k, Gsm8kOptions, line_splittable=True, check=check_gsm8k_options),
        AdapterInfo("identity", read_identity, IdentityOptions),
        AdapterInfo("generic", read_generic, GenericOptions),
        AdapterInfo(
            "astro_qa",
            read_astro_qa,
            AstroQaOptions,
            structured=True,
            folder=True,
            path_options=("date_cells",),
            holdout_strata=("type", "subfield"),
        ),
    )
}

STRATA_COLUMNS = tuple(dict.fromkeys(f"_x_{name}" for info in ADAPTERS.values() for name in info.holdout_strata))
"""The structured-field columns some adapter offers as hold-out strata (`_x_type`, `_x_subfield`):
the global steps carry them on the thin rows, and the manifest's `breakdown` counts records by them."""
