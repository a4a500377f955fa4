"""Recipes: TOML files validated by schemas/recipe.schema.json, loaded into frozen dataclasses."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema

from .config import from_table
from .errors import RecipeError
from .quarantine_limit import QualityConfig
from .resources import load_schema
from .sources import ADAPTERS, AdapterInfo
from .steps.decontaminate import DecontaminateConfig, EvalSetSpec
from .steps.dedup import DedupConfig
from .steps.expand import ExpandConfig
from .steps.holdout import HoldoutConfig
from .steps.mix import CategoryTarget, MixConfig
from .steps.neardup import NearDedupConfig
from .steps.quality import QUALITY_STEPS, FilterConfig
from .steps.split import SplitConfig
from .writers.splits import OutputConfig


@dataclass(frozen=True)
class CorpusConfig:
    """`[corpus]`."""

    name: str
    description: str = ""
    seed: int = 0
    sources_dir: str = "."
    """Where source paths resolve, relative to the recipe (`--sources` overrides it)."""
    allow_outside_sources: bool = False


@dataclass(frozen=True)
class RunConfig:
    """`[run]`: how a build runs, never what it builds. The section is cut out of the recipe's text
    before it is hashed, recorded or shown (`load_recipe`), so two runs with other settings write the
    same bytes; the manifest records the settings under `volatile`."""

    workers: int | None = None
    """Worker processes; None: every core. `--workers` overrides it."""
    executor: str = "local"


@dataclass(frozen=True)
class FetchSpec:
    path: str
    sha256: str
    url: str | None = None
    hub: dict[str, str] | None = None
    """{repo_id, filename, revision, repo_type}."""


@dataclass(frozen=True)
class SourceSpec:
    """One `[[sources]]` entry."""

    name: str
    adapter: str
    paths: tuple[str, ...]
    category: str
    lang: str
    order: int
    opencc: str = "none"
    license: str | None = None
    url: str | None = None
    optional: bool = False
    priority: int | None = None
    max_quarantine_ratio: float | None = None
    max_filtered_ratio: float | None = None
    validation_fraction: float | None = None
    options: Any = None
    """The adapter's options dataclass (AdapterInfo.options), built from the `options` table;
    None: the adapter's defaults."""
    holdout: HoldoutConfig | None = None
    expand: ExpandConfig | None = None
    fetch: tuple[FetchSpec, ...] = ()
    """Where `stellar-data sources fetch` gets the files (pinned URLs or Hub revisions, sha256)."""
    filters: tuple[tuple[str, FilterConfig], ...] = ()
    """The quality steps that run on this source, (step name, config): the recipe's `[filters.*]`
    tables less those excluding the source or its category, plus `language` for `lang = "detect"`."""

    def filter_config(self, step: str) -> FilterConfig | None:
        return dict(self.filters).get(step)

    @property
    def dedup_rank(self) -> int:
        """Lower wins among exact duplicates: the explicit priority, else recipe order."""
        return self.order if self.priority is None else self.priority


@dataclass(frozen=True)
class Recipe:
    path: Path
    sha256: str
    name: str
    description: str
    seed: int
    sources_dir: Path
    """Where source and eval-set paths resolve (`--sources`, else `corpus.sources_dir`)."""
    protected_terms: tuple[str, ...]
    max_quarantine_ratio: float
    max_filtered_ratio: float
    exact_dedup: bool
    validation_fraction: float
    shard_records: int
    train_json: bool
    sources: tuple[SourceSpec, ...]
    mix: MixConfig | None = None
    near_dedup: NearDedupConfig | None = None
    decontaminate: DecontaminateConfig | None = None
    text: str = ""
    """The recipe file as read, less its `[run]` table (recorded in the manifest and the dataset card;
    `sha256` is of these bytes)."""
    allow_outside_sources: bool = False
    """`corpus.allow_outside_sources`: source and eval-set paths may resolve outside `sources_dir`."""
    run: RunConfig = field(default_factory=RunConfig)
    filters: dict[str, FilterConfig] = field(default_factory=dict)
    """`[filters.<step>]`: the quality steps the recipe turns on, with their settings."""
    sections: dict[str, Any] = field(default_factory=dict)
    """The recipe's top-level tables as validated (less `sources`): a step added later builds its
    config from its own section (`config.from_table(Config, recipe.section("name"))`) with no
    loader code here."""

    def section(self, name: str) -> dict[str, Any] | None:
        return self.sections.get(name)

    def source(self, name: str) -> SourceSpec:
        return next(s for s in self.sources if s.name == name)

    def quarantine_limit(self, source: SourceSpec) -> float:
        if source.max_quarantine_ratio is not None:
            return source.max_quarantine_ratio
        return self.max_quarantine_ratio

    def filtered_limit(self, source: SourceSpec) -> float:
        if source.max_filtered_ratio is not None:
            return source.max_filtered_ratio
        return self.max_filtered_ratio

    def validation_fraction_of(self, source: SourceSpec) -> float:
        if source.validation_fraction is not None:
            return source.validation_fraction
        return self.validation_fraction


def _key_path(error: jsonschema.ValidationError) -> str:
    parts: list[str] = []
    for part in error.absolute_path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else str(part))
    return "".join(parts) or "(top level)"


def _describe(error: jsonschema.ValidationError, document: dict[str, Any]) -> str:
    where = _key_path(error)
    # Point at the source by name, which is easier to find in a long recipe than an index.
    path = list(error.absolute_path)
    if len(path) >= 2 and path[0] == "sources" and isinstance(path[1], int):
        try:
            name = document["sources"][path[1]].get("name")
        except (IndexError, AttributeError):
            name = None
        if name:
            where = f"{where} (source {name!r})"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key {', '.join(map(repr, unknown))} (allowed: {', '.join(allowed)})"
    return f"{where}: {error.message}"


def validate_recipe_document(document: dict[str, Any], origin: str) -> None:
    schema = load_schema("recipe.schema.json")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise RecipeError(f"recipe {origin}: {_describe(best, document)}")
    names = [s["name"] for s in document["sources"]]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RecipeError(f"recipe {origin}: sources: duplicate source name {duplicated[0]!r}")


def _read_protected_terms(recipe_path: Path, relative: str | None) -> tuple[str, ...]:
    if relative is None:
        return ()
    terms_path = (recipe_path.parent / relative).resolve()
    try:
        text = terms_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe {recipe_path}: normalize.protected_terms: file not found: {terms_path}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"recipe {recipe_path}: normalize.protected_terms: {terms_path} is not UTF-8") from None
    terms = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    # Longest first, so a term containing another is protected whole.
    return tuple(sorted({t for t in terms if t}, key=lambda t: (-len(t), t)))


def _step_configs(
    recipe_path: Path, source: dict[str, Any], where: str
) -> tuple[HoldoutConfig | None, ExpandConfig | None]:
    adapter = ADAPTERS[source["adapter"]]
    wanted = [key for key in ("holdout", "templates") if key in source]
    if wanted and not adapter.structured:
        structured = ", ".join(name for name, info in ADAPTERS.items() if info.structured)
        raise RecipeError(f"recipe {recipe_path}: {where}.{wanted[0]}: needs structured items (adapter {structured})")
    holdout = None
    if "holdout" in source:
        spec = source["holdout"]
        strata = {} if "stratify" in spec else {"stratify": adapter.holdout_strata}  # the adapter's, by default
        holdout = from_table(HoldoutConfig, spec, **strata)
    expand = None
    if "templates" in source:
        path = (recipe_path.parent / source["templates"]["file"]).resolve()
        if not path.is_file():
            raise RecipeError(f"recipe {recipe_path}: {where}.templates.file: file not found: {path}")
        expand = ExpandConfig(path, dict(source["templates"]["variants"]))
    return holdout, expand


def _resolve_options(recipe_path: Path, adapter: AdapterInfo, table: dict[str, Any], where: str) -> Any:
    """The adapter's options from the `options` table: checked for what the schema cannot say, and
    the options naming files resolved against the recipe's folder (before anything is read)."""
    options = from_table(adapter.options, table)
    if problem := adapter.check(options):
        raise RecipeError(f"recipe {recipe_path}: {where}.options.{problem}")
    for key in adapter.path_options:
        if (relative := getattr(options, key)) is not None:
            path = (recipe_path.parent / relative).resolve()
            if not path.is_file():
                raise RecipeError(f"recipe {recipe_path}: {where}.options.{key}: file not found: {path}")
            options = replace(options, **{key: str(path)})
    return options


_SOURCE_SCALARS = (
    "opencc", "license", "url", "optional", "priority", "max_quarantine_ratio", "max_filtered_ratio",
    "validation_fraction",
)  # fmt: skip
"""`[[sources]]` keys read as they are (their defaults are SourceSpec's)."""


def load_recipe(path: str | Path, *, sources_dir: str | Path | None = None, seed: int | None = None) -> Recipe:
    """Read and validate a recipe. `sources_dir` and `seed` override the recipe's own values."""
    recipe_path = Path(path)
    try:
        raw = recipe_path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"recipe {recipe_path}: file not found") from None
    except OSError as exc:
        raise RecipeError(f"recipe {recipe_path}: cannot read: {exc.strerror}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RecipeError(f"recipe {recipe_path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe {recipe_path}: invalid TOML: {exc}") from None
    validate_recipe_document(document, str(recipe_path))
    if seed is not None:
        _check_seed(seed)

    corpus = from_table(CorpusConfig, document["corpus"])
    filters = _filter_configs(recipe_path, document.get("filters", {}))
    resolved_sources = Path(sources_dir) if sources_dir is not None else recipe_path.parent / corpus.sources_dir
    step_configs = [
        _step_configs(recipe_path, s, f"sources[{i}] (source {s['name']!r})") for i, s in enumerate(document["sources"])
    ]
    sources = tuple(
        SourceSpec(
            name=s["name"],
            adapter=s["adapter"],
            paths=tuple([s["path"]] if isinstance(s["path"], str) else s["path"]),
            category=s["category"],
            lang=s["lang"],
            order=index,
            **{key: s[key] for key in _SOURCE_SCALARS if key in s},
            options=_resolve_options(
                recipe_path, ADAPTERS[s["adapter"]], s.get("options", {}), f"sources[{index}] (source {s['name']!r})"
            ),
            fetch=tuple(FetchSpec(f["path"], f["sha256"], f.get("url"), f.get("hub")) for f in s.get("fetch", [])),
            holdout=step_configs[index][0],
            expand=step_configs[index][1],
        )
        for index, s in enumerate(document["sources"])
    )
    sources = tuple(_with_filters(recipe_path, spec, filters) for spec in sources)
    quality = from_table(QualityConfig, document.get("quality"))
    output = from_table(OutputConfig, document.get("output"))
    text = _without_run(raw.decode("utf-8"), document, recipe_path)
    return Recipe(
        path=recipe_path,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        name=corpus.name,
        description=corpus.description,
        seed=corpus.seed if seed is None else seed,
        sources_dir=resolved_sources,
        protected_terms=_read_protected_terms(recipe_path, document.get("normalize", {}).get("protected_terms")),
        max_quarantine_ratio=quality.max_quarantine_ratio,
        max_filtered_ratio=quality.max_filtered_ratio,
        exact_dedup=from_table(DedupConfig, document.get("dedup")).exact,
        validation_fraction=from_table(SplitConfig, document.get("split")).validation_fraction,
        shard_records=output.shard_records,
        train_json=output.train_json,
        sources=sources,
        mix=_mix_config(document.get("mix")),
        near_dedup=_near_dedup_config(document.get("near_dedup"), str(recipe_path)),
        decontaminate=_decontaminate_config(document.get("decontaminate")),
        text=text,
        allow_outside_sources=corpus.allow_outside_sources,
        run=from_table(RunConfig, document.get("run")),
        filters=filters,
        sections={key: table for key, table in document.items() if key != "sources"},
    )


def _filter_configs(recipe_path: Path, section: dict[str, Any]) -> dict[str, FilterConfig]:
    """`[filters.<step>]` tables as their steps' configs, in chain order; options naming files
    (the config's `path_fields`) resolved against the recipe's folder."""
    configs = {}
    for name, step in QUALITY_STEPS.items():
        if name not in section:
            continue
        config = from_table(step.config, section[name])
        for key in getattr(config, "path_fields", ()):
            if (relative := getattr(config, key)) is not None:
                path = (recipe_path.parent / relative).resolve()
                if not path.is_file():
                    raise RecipeError(f"recipe {recipe_path}: filters.{name}.{key}: file not found: {path}")
                config = replace(config, **{key: str(path)})
        configs[name] = config
    return configs


def _with_filters(recipe_path: Path, spec: SourceSpec, filters: dict[str, FilterConfig]) -> SourceSpec:
    """The source with the quality steps that run on it; each is built once here, so that a setting
    its step refuses (a bad pattern) is a recipe error before anything is read."""
    chosen = {name: config for name, config in filters.items() if config.applies_to(spec)}
    if spec.lang == "detect" and "language" not in chosen:  # detection assigns the language
        chosen["language"] = QUALITY_STEPS["language"].config()
    for name, config in chosen.items():
        try:
            QUALITY_STEPS[name](config, spec)
        except ValueError as exc:
            raise RecipeError(f"recipe {recipe_path}: filters.{name}: {exc}") from None
    ordered = tuple((name, chosen[name]) for name in QUALITY_STEPS if name in chosen)
    return replace(spec, filters=ordered)


_TABLE_HEADER = re.compile(r"^\s*\[")
_RUN_HEADER = re.compile(r"^\s*\[\s*run\s*\]\s*(#.*)?$")


def _without_run(text: str, document: dict[str, Any], origin: Path) -> str:
    """The recipe text less its `[run]` table (from its header to the next table header, with the blank
    lines after it, or before it when it ends the file), which the recipe's hash, manifest and card
    never see: how a corpus is run does not change its bytes, and neither does adding the table."""
    if "run" not in document:
        return text
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _RUN_HEADER.match(line)), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if _TABLE_HEADER.match(lines[i])), len(lines))
    while end > start + 1 and _blank_or_comment(lines[end - 1]):  # the next table's comments stay
        end -= 1
    while end < len(lines) and not lines[end].strip():  # the blank lines after the table go with it
        end += 1
    while end == len(lines) and start > 0 and not lines[start - 1].strip():  # the last table: those before it
        start -= 1
    stripped = "".join(lines[:start] + lines[end:])
    if tomllib.loads(stripped) != {k: v for k, v in document.items() if k != "run"}:
        raise RecipeError(f"recipe {origin}: run: write it as a table of its own, `[run]` then its keys")
    return stripped


def _blank_or_comment(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _check_seed(seed: int) -> None:
    """A `--seed` override obeys the schema's range for `corpus.seed`."""
    bounds = load_schema("recipe.schema.json")["properties"]["corpus"]["properties"]["seed"]
    low, high = bounds["minimum"], bounds["maximum"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high:
        raise RecipeError(f"--seed {seed!r}: must be an integer from {low} to {high} (the recipe schema's corpus.seed)")


def _mix_config(section: dict[str, Any] | None) -> MixConfig | None:
    if section is None:
        return None
    categories = {name: from_table(CategoryTarget, target) for name, target in section["categories"].items()}
    return from_table(MixConfig, section, categories=categories)


def _near_dedup_config(section: dict[str, Any] | None, origin: str) -> NearDedupConfig | None:
    if section is None:
        return None
    config = from_table(NearDedupConfig, section)
    if not config.enabled:
        return None
    if config.num_perm % config.bands:
        raise RecipeError(
            f"recipe {origin}: near_dedup.bands {config.bands} does not divide num_perm {config.num_perm}"
        )
    return config


def _decontaminate_config(section: dict[str, Any] | None) -> DecontaminateConfig | None:
    if section is None:
        return None
    eval_sets = tuple(from_table(EvalSetSpec, e) for e in section.get("eval_sets", []))
    return from_table(DecontaminateConfig, section, eval_sets=eval_sets)
