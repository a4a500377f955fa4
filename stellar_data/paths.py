"""Where a recipe's source and eval-set paths may point, and what they must be.

Rules (checked by `plan_build`, before anything is read):
- Source paths and globs, and eval-set paths, are relative to the sources directory (`--sources`,
  else `corpus.sources_dir`). Resolved (`..`, absolute paths, symlinks), each must stay inside it
  unless the recipe sets `corpus.allow_outside_sources = true`. A symlink inside the sources
  directory that points outside is refused the same way: its target is what would be read. A
  folder source is checked entry by entry, through the symlinked folders inside it.
- A source is a regular file; a folder only for the adapters that read one (AdapterInfo.folder). A
  FIFO, a device or a socket is refused (reading one would block or never end).
- A symlink loop is reported as one (ELOOP), not as a missing file.
- Within one source, a file matched by several paths or globs is read once (first match first);
  the same file in two sources is a recipe error naming both.
Recipe-side files (templates, date_cells, protected terms) are relative to the recipe's folder and
are not concerned.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import RecipeError, SourceFileError
from .recipe import Recipe, SourceSpec
from .sources import ADAPTERS, SourceFile

_OTHER_KINDS = {
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class SourcePaths:
    """Where one source's (or eval set's) paths may resolve; `owner` names it in errors."""

    root: Path
    owner: str
    allow_outside: bool = False

    def matches(self, pattern: str) -> list[Path]:
        """What a pattern names: the path itself, or a glob's sorted matches (a symlink loop
        included, to be reported as one); [] when there is nothing there."""
        if not any(ch in pattern for ch in _GLOB_CHARS):
            path = self.root / pattern  # an absolute pattern replaces the root
            return [path] if os.path.lexists(path) else []
        given = Path(pattern)
        if given.is_absolute():
            found = Path(given.anchor).glob(str(given.relative_to(given.anchor)))
        else:
            found = self.root.glob(pattern)
        return sorted(p for p in found if p.exists() or _is_loop(p))

    def name_of(self, path: Path) -> str:
        """The path as lineage and errors write it: relative to the sources directory when it is
        written under it, else absolute."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def check_inside(self, path: Path) -> None:
        """Refuse a path that resolves outside the sources directory (unless allowed)."""
        if self.allow_outside:
            return
        real, root = real_path(path), real_path(self.root)
        if not real.is_relative_to(root):
            raise SourceFileError(
                f"{self.owner}: {self.name_of(path)} resolves to {real}, outside the sources directory {root}; "
                "set corpus.allow_outside_sources = true to read it"
            )

    def check_folder_inside(self, folder: Path) -> None:
        """Every entry of a folder source stays inside, through the symlinked folders in it."""
        if not self.allow_outside:
            for entry in _walk(folder):
                self.check_inside(entry)


def source_files(recipe: Recipe, spec: SourceSpec) -> tuple[list[SourceFile], list[str]]:
    """(the source's files, each once in first-match order, checked; the patterns matching nothing,
    in which case no file is checked: an optional source is skipped whole)."""
    paths = SourcePaths(recipe.sources_dir, f"source {spec.name!r}", recipe.allow_outside_sources)
    matches, absent = source_matches(paths, spec.paths)
    if absent:
        return [], absent
    for path in matches:
        check_source_path(paths, path, spec.adapter)
    return [SourceFile(path, paths.name_of(path)) for path in matches], []


def check_one_source_per_file(recipe: Recipe, files: dict[str, list[SourceFile]]) -> None:
    """The same file (after resolving) read by two sources is a recipe error naming both."""
    owners: dict[Path, str] = {}
    for source, read in files.items():
        for file in read:
            first = owners.setdefault(real_path(file.path), source)
            if first != source:
                raise RecipeError(
                    f"recipe {recipe.path}: sources {first!r} and {source!r} both read {file.relative}; "
                    "a file belongs to one source"
                )


def check_eval_set_paths(recipe: Recipe) -> None:
    """Each declared eval set's file: inside the sources directory (unless allowed), a regular file.
    A missing one is left to its reader, which names it."""
    for eval_set in recipe.decontaminate.eval_sets if recipe.decontaminate else ():
        paths = SourcePaths(recipe.sources_dir, f"eval set {eval_set.name!r}", recipe.allow_outside_sources)
        path = recipe.sources_dir / eval_set.path
        if os.path.lexists(path):
            check_source_path(paths, path, None)


def source_matches(paths: SourcePaths, patterns: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """(the files the patterns match, each file once in first-match order; the patterns matching
    nothing)."""
    found: dict[Path, Path] = {}
    absent: list[str] = []
    for pattern in patterns:
        matched = paths.matches(pattern)
        if not matched:
            absent.append(pattern)
        for path in matched:
            found.setdefault(real_path(path), path)
    return list(found.values()), absent


def check_source_path(paths: SourcePaths, path: Path, adapter: str | None) -> None:
    """Inside the sources directory (unless allowed) and of a kind the reader can read."""
    paths.check_inside(path)
    check_kind(paths, path, adapter)
    if path.is_dir():
        paths.check_folder_inside(path)


def real_path(path: Path) -> Path:
    """The path with `..` and every symlink resolved (a loop is left as it is, never an error)."""
    return Path(os.path.realpath(path))


def _is_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def check_kind(paths: SourcePaths, path: Path, adapter: str | None) -> None:
    """A regular file, or a folder for an adapter that reads one (`adapter` None: an eval set)."""
    name = paths.name_of(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceFileError(f"{paths.owner}: {name}: symlink loop ({path})") from None
        if isinstance(exc, FileNotFoundError) and os.path.islink(path):
            raise SourceFileError(f"{paths.owner}: {name}: broken symlink (to {os.readlink(path)})") from None
        raise SourceFileError(f"{paths.owner}: {name}: cannot access: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        if adapter is not None and ADAPTERS[adapter].folder:
            return
        reader = "an eval set is read from a file" if adapter is None else f"the {adapter} adapter reads files"
        raise SourceFileError(f"{paths.owner}: {name} is a folder; {reader}")
    kind = next((label for test, label in _OTHER_KINDS.items() if test(mode)), "not a file or a folder")
    raise SourceFileError(f"{paths.owner}: {name} is not a regular file ({kind})")


def _walk(folder: Path) -> list[Path]:
    """Every entry under a folder, through symlinked folders (each real folder visited once)."""
    entries: list[Path] = []
    seen: set[Path] = set()
    pending = [folder]
    while pending:
        directory = pending.pop()
        if real_path(directory) in seen:
            continue
        seen.add(real_path(directory))
        for entry in directory.iterdir():
            entries.append(entry)
            if entry.is_dir():
                pending.append(entry)
    return sorted(entries)


def folder_files(folder: Path) -> list[Path]:
    """The files of a folder source, sorted, through symlinked folders (what its adapter reads)."""
    return [p for p in _walk(folder) if p.is_file()]
