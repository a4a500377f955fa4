"""The build plan: every source's files resolved and checked, each a task of the ingest (a large
JSON Lines file split into line spans, so that the workers stay evenly busy)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import SourceFileError
from .paths import check_eval_set_paths, check_one_source_per_file, source_files
from .recipe import Recipe, SourceSpec
from .sources import ADAPTERS, SourceFile
from .sources.files import is_json_lines, line_spans


@dataclass(frozen=True)
class PlannedFile:
    spec: SourceSpec
    file: SourceFile
    index: int


@dataclass(frozen=True)
class BuildPlan:
    recipe: Recipe
    files: tuple[PlannedFile, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    """Optional sources whose files are absent: name -> warning."""


def plan_build(recipe: Recipe) -> BuildPlan:
    """Resolve every source's paths (globs allowed) against the sources directory; the paths of
    sources and eval sets are checked up front (paths.py)."""
    root = recipe.sources_dir
    read: dict[str, list[SourceFile]] = {}
    skipped: dict[str, str] = {}
    for spec in recipe.sources:
        files, absent = source_files(recipe, spec)
        if absent:
            where = ", ".join(absent)
            if spec.optional:
                skipped[spec.name] = f"optional source {spec.name!r} skipped: not found in {root}: {where}"
                continue
            raise SourceFileError(f"source {spec.name!r}: file not found in {root}: {where}")
        read[spec.name] = files
    check_one_source_per_file(recipe, read)
    check_eval_set_paths(recipe)
    planned = [
        PlannedFile(spec, part, index)
        for spec in recipe.sources
        for index, file in enumerate(read.get(spec.name, ()))
        for part in file_parts(spec, file)
    ]
    return BuildPlan(recipe, tuple(planned), skipped)


SPAN_BYTES = 64 << 20
"""A JSON Lines file larger than this is read as spans of about this size, one task each: the
workers stay evenly busy and each holds one span's records, not a whole file's."""


def file_parts(spec: SourceSpec, file: SourceFile, span_bytes: int = SPAN_BYTES) -> list[SourceFile]:
    """The file as one task, or a large JSON Lines file as line spans (AdapterInfo.line_splittable)."""
    if not ADAPTERS[spec.adapter].line_splittable or not file.path.is_file() or file.path.stat().st_size <= span_bytes:
        return [file]
    if not is_json_lines(file):
        return [file]
    spans = line_spans(file.path, span_bytes)
    return [replace(file, span=span) for span in spans] if len(spans) > 1 else [file]
