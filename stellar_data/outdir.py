"""The output folder: which folders a build may replace, the build lock, the atomic swap, recovery.

A build never touches a user's files outside `--out`, and replaces `--out` only when it is provably
a corpus. The rules, each tested in tests/stellar_data/test_outdir.py:

- **Provably a corpus**: `--out` is absent, an empty folder, or holds a `manifest.json` that this
  library wrote (a JSON object with `format_version`, `corpus`, `recipe.sha256` and a `files` map)
  and nothing that manifest does not list (its files, the folders above them, `manifest.json`).
  Any other file, folder or symlink in it, and the build refuses in one line naming it.
- **No overlap**: `--out` may not be, contain or lie inside the sources folder or the recipe's folder.
- **One build per `--out`**: a build holds an exclusive `flock` on `.<name>.lock` beside `--out`
  from its start to its end; a second build fails at once in one line. The kernel drops the lock
  when its process dies, so a killed build leaves no stale lock (the empty lock file stays).
- **One atomic swap**: the finished staging folder `.<name>.staging-<id>` and `--out` are exchanged
  by one `renameat2(RENAME_EXCHANGE)`, so `--out` is at every instant the old corpus or the new one.
  Where the filesystem or the OS has no exchange, a journaled pair of renames is used
  (`.<name>.swap.json` names the folder set aside), which the next build rolls back.
- **Recovery**: every build, once it holds the lock, first finishes or rolls back an interrupted
  swap and removes the staging and set-aside folders that killed builds left (no build is using
  them: it would hold the lock).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .errors import CorpusDirError

MANIFEST_NAME = "manifest.json"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

Step = Callable[[str], None]
"""Called with the name of each point of the swap as it is passed (crash tests stop the process there)."""


def _no_step(_: str) -> None:
    return None


def staging_name(out: Path) -> str:
    return f".{out.name}.staging-{uuid.uuid4().hex[:8]}"


def _leftover_pattern(out: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(out.name)}\.(staging|previous)-[0-9a-f]{{8}}")


def _journal(out: Path) -> Path:
    return out.parent / f".{out.name}.swap.json"


def lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


# --- which folders may be replaced -------------------------------------------------------------


def corpus_problem(folder: Path) -> str | None:
    """Why `folder` is not provably a corpus this library may replace; None when it is (or is empty)."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        return f"cannot be listed ({exc.strerror})"
    if not entries:
        return None
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file() or manifest_path.is_symlink():
        return f"is not empty and has no {MANIFEST_NAME} of a stellar-data corpus"
    listed = _listed_files(manifest_path)
    if listed is None:
        return f"its {MANIFEST_NAME} was not written by stellar-data"
    allowed_dirs = {parent for name in listed for parent in Path(name).parents} - {Path(".")}
    for root, dirs, files in os.walk(folder):
        here = Path(root).relative_to(folder)
        for name in dirs:
            path = folder / here / name
            if path.is_symlink() or here / name not in allowed_dirs:
                return f"holds {(here / name).as_posix()}/, which its manifest does not list"
        for name in files:
            if (here / name).as_posix() not in listed:
                return f"holds {(here / name).as_posix()}, which its manifest does not list"
            if (folder / here / name).is_symlink():
                return f"holds {(here / name).as_posix()} as a symlink"
    return None


def _listed_files(manifest_path: Path) -> set[str] | None:
    """The files a stellar-data manifest lists (with manifest.json); None when it is not one."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    recipe, files = manifest.get("recipe"), manifest.get("files")
    if not (
        isinstance(manifest.get("format_version"), int)
        and isinstance(manifest.get("corpus"), str)
        and isinstance(recipe, dict)
        and isinstance(recipe.get("sha256"), str)
        and isinstance(files, dict)
        and all(isinstance(entry, dict) and "sha256" in entry for entry in files.values())
    ):
        return None
    if any(Path(name).is_absolute() or ".." in Path(name).parts for name in files):
        return None
    return {*files, MANIFEST_NAME}


def check_out(out: Path, read: dict[str, Path], kept: dict[str, Path]) -> None:
    """Refuse an `--out` that overlaps a folder the build reads, or exists and is not provably a corpus.

    `read` folders (the sources) may not be, contain or lie inside `--out`; `kept` folders (the
    recipe's) may hold `--out` but not be it or lie inside it. Names are what the message calls them."""
    target = out.resolve()
    for what, folder in (read | kept).items():
        folder = folder.resolve()
        inside = folder in target.parents
        if target == folder or target in folder.parents or (inside and what in read):
            relation = "is" if target == folder else "lies inside" if inside else "contains"
            raise CorpusDirError(f"--out {out} {relation} {what} ({folder}); choose an --out outside it")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise CorpusDirError(f"--out {out}: exists and is not a directory; refusing to replace it")
    if out.exists() and (problem := corpus_problem(out)):
        raise CorpusDirError(
            f"--out {out}: not a stellar-data corpus ({problem}); refusing to replace it: choose another --out"
        )


# --- the lock ------------------------------------------------------------------------------------


@contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold the exclusive lock beside `out` (see the module docstring) or fail at once in one line.

    The holder unlinks the lock file before it lets go, so a finished build leaves nothing beside
    `out`; a build that locked a file just unlinked that way sees another inode at the path and
    opens the path again."""
    path = lock_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusDirError(f"--out {out}: cannot create its folder ({exc.strerror}: {exc.filename})") from None
    fd = _locked_fd(out, path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with suppress(OSError):
            path.unlink()
        os.close(fd)  # closing drops the lock


def _locked_fd(out: Path, path: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CorpusDirError(f"--out {out}: cannot create the lock {path} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise CorpusDirError(
                f"--out {out}: another build is writing it (pid {holder} holds {path.name}); wait for it to finish"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder unlinked it between our open and our lock


# --- the swap and its recovery -------------------------------------------------------------------


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False when this OS or filesystem cannot (the caller falls back)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(staging: Path, out: Path, *, exchange: bool = True, step: Step = _no_step) -> None:
    """Put the finished `staging` folder at `out` and remove what was there. Call under the lock,
    with signals held off (a signal between the fallback's two renames would leave no `out`)."""
    if not out.exists():
        staging.rename(out)
        step("renamed")
    elif exchange and _exchange(staging, out):
        step("exchanged")  # `out` is the new corpus; `staging` now holds the old one
        _sync_dir(out.parent)
        shutil.rmtree(staging)
    else:
        _journaled_swap(staging, out, step)
    _sync_dir(out.parent)


def _journaled_swap(staging: Path, out: Path, step: Step) -> None:
    previous = out.parent / f".{out.name}.previous-{uuid.uuid4().hex[:8]}"
    journal = _journal(out)
    _write_journal(journal, {"previous": previous.name, "staging": staging.name})
    step("journaled")
    out.rename(previous)
    step("set_aside")
    staging.rename(out)
    step("renamed")
    _sync_dir(out.parent)
    journal.unlink()
    shutil.rmtree(previous)


def _write_journal(journal: Path, entry: dict[str, Any]) -> None:
    tmp = journal.with_name(journal.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(entry, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(journal)
    _sync_dir(journal.parent)


def recover(out: Path) -> list[str]:
    """Finish or roll back an interrupted swap and remove killed builds' leftovers; call under the
    lock. Returns one note per thing done (the build reports them as warnings)."""
    notes: list[str] = []
    journal = _journal(out)
    if journal.exists():
        try:
            entry = json.loads(journal.read_text(encoding="utf-8"))
            previous = out.parent / str(entry["previous"])
        except (OSError, ValueError, KeyError, TypeError):
            previous = None
        if previous is not None and not out.exists() and _is_leftover(out, previous):
            previous.rename(out)
            notes.append(f"restored the previous corpus at {out} (a build was interrupted while replacing it)")
        journal.unlink()
    leftovers = sorted(p for p in _siblings(out) if _is_leftover(out, p))
    if not out.exists():  # the old code's two renames, interrupted between them: the newest corpus set aside
        aside = [p for p in leftovers if ".previous-" in p.name and corpus_problem(p) is None and any(p.iterdir())]
        if aside:
            newest = max(aside, key=lambda p: p.stat().st_mtime_ns)
            newest.rename(out)
            leftovers.remove(newest)
            notes.append(f"restored the previous corpus at {out} from {newest.name}")
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    if leftovers:
        notes.append(f"removed {len(leftovers)} folder(s) left beside {out} by interrupted builds")
    journal.with_name(journal.name + ".tmp").unlink(missing_ok=True)
    return notes


def _is_leftover(out: Path, path: Path) -> bool:
    """A staging or set-aside folder of `out`'s builds (by its name: `.<name>.staging-<8 hex>`)."""
    return bool(_leftover_pattern(out).fullmatch(path.name)) and path.is_dir() and not path.is_symlink()


def _siblings(out: Path) -> list[Path]:
    try:
        return list(out.parent.iterdir())
    except OSError:
        return []


def remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
