"""`stellar-data sources fetch`: download a recipe's upstream files into the layout it expects.

Each `[[sources.fetch]]` entry names a URL at a pinned commit (or a Hub file at a pinned revision),
the path under `--sources`, and the file's sha256. A present file with the right hash is kept; a
download goes to `<path>.part` and resumes from its size (HTTP Range) when interrupted; the hash is
checked before the file is moved into place, and a mismatch is refused with both hashes named.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import RecipeError, SourceFileError
from .hashing import file_sha256
from .recipe import FetchSpec, Recipe

CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    path: str
    action: str
    """kept (already there, verified), downloaded, resumed."""
    bytes: int


Progress = Callable[[str, int, int], None]
"""progress(file, done bytes, total bytes or 0)."""


def apply_mirrors(url: str, mirrors: dict[str, str]) -> str:
    """Rewrite a URL whose prefix has a mirror (e.g. a local copy of raw.githubusercontent.com)."""
    for prefix, replacement in sorted(mirrors.items(), key=lambda kv: -len(kv[0])):  # the longest prefix wins
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    return url


def _download(url: str, part: Path, progress: Progress | None, name: str, timeout: float) -> bool:
    """Append the rest of `url` to `part`; True when it resumed an earlier partial download."""
    start = part.stat().st_size if part.exists() else 0
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the part is already complete
            return True
        raise SourceFileError(f"{name}: download failed: HTTP {exc.code} from {url}") from None
    except (urllib.error.URLError, ValueError, OSError) as exc:
        raise SourceFileError(f"{name}: download failed: {getattr(exc, 'reason', exc)} ({url})") from None
    with response:
        resumed = start > 0 and response.status == 206
        total = int(response.headers.get("Content-Length") or 0) + (start if resumed else 0)
        done = start if resumed else 0
        try:
            with part.open("ab" if resumed else "wb") as handle:
                while block := response.read(CHUNK):
                    handle.write(block)
                    done += len(block)
                    if progress:
                        progress(name, done, total)
        except OSError as exc:  # a stalled or reset connection: keep what arrived
            raise SourceFileError(
                f"{name}: download interrupted at {done} bytes ({exc}); run again to resume"
            ) from None
    if total and done < total:  # the server closed early: keep the part, the next run resumes it
        raise SourceFileError(f"{name}: download interrupted at {done} of {total} bytes ({url}); run again to resume")
    return resumed


def _fetch_hub(spec: FetchSpec, part: Path) -> None:
    from huggingface_hub import hf_hub_download

    hub = spec.hub or {}
    cached = hf_hub_download(
        hub["repo_id"], hub["filename"], revision=hub["revision"], repo_type=hub.get("repo_type", "dataset")
    )
    shutil.copyfile(cached, part)


def check_fetch_target(recipe: Recipe, spec: FetchSpec, root: Path) -> None:
    """A fetched file is written at `root / spec.path`, which must stay inside `root` (through any
    symlinked folder too), whatever `allow_outside_sources` says: that key lets a build read
    elsewhere, never a fetch write there."""
    real_root = root.resolve()
    parent = (root / spec.path).parent.resolve()
    if Path(spec.path).is_absolute() or ".." in Path(spec.path).parts or not parent.is_relative_to(real_root):
        raise RecipeError(
            f"recipe {recipe.path}: fetch path {spec.path!r} would be written outside the sources folder "
            f"{real_root}; fetch paths are relative to it, without '..'"
        )


def fetch_file(spec: FetchSpec, root: Path, *, mirrors: dict[str, str] | None = None, progress: Progress | None = None,
               timeout: float = 60.0) -> Fetched:  # fmt: skip
    target = root / spec.path
    if target.is_file() and file_sha256(target) == spec.sha256:
        return Fetched(spec.path, "kept", target.stat().st_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if spec.url is not None:
        resumed = _download(apply_mirrors(spec.url, mirrors or {}), part, progress, spec.path, timeout)
    else:
        resumed = False
        _fetch_hub(spec, part)
    found = file_sha256(part)
    if found != spec.sha256:
        part.unlink()
        raise SourceFileError(
            f"{spec.path}: sha256 mismatch: expected {spec.sha256}, got {found}; the file was not kept"
        )
    part.replace(target)
    return Fetched(spec.path, "resumed" if resumed else "downloaded", target.stat().st_size)


def fetch_sources(recipe: Recipe, root: Path | None = None, *, mirrors: dict[str, str] | None = None,
                  progress: Progress | None = None) -> list[Fetched]:  # fmt: skip
    """Fetch every pinned file of the recipe's sources into `root` (default: its sources folder)."""
    root = Path(root) if root is not None else recipe.sources_dir
    specs = [spec for source in recipe.sources for spec in source.fetch]
    if not specs:
        raise SourceFileError(f"recipe {recipe.path}: no source has [[sources.fetch]] entries")
    for spec in specs:  # all before the first download: a fetch writes nothing outside `root`
        check_fetch_target(recipe, spec, root)
    return [fetch_file(spec, root, mirrors=mirrors, progress=progress) for spec in specs]
