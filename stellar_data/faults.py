"""Faults from outside the data during a build: SIGTERM, signals during the swap, a full disk.

- SIGTERM (while the process has the default handler) raises `Terminated`, so the build removes its
  staging folder on the way out, as it does for SIGINT's KeyboardInterrupt; the CLI exits 143.
- SIGINT and SIGTERM are held off during the swap itself, and while the worker pool starts its
  processes, and delivered right after.
- A worker process dies with the build that started it (a SIGKILLed build leaves no orphan
  workers holding its pipes and reading on).
- A write that fails for want of space (ENOSPC, EDQUOT) becomes one `DiskFullError` line naming the
  file being written and the space involved; the previous corpus is untouched (the swap never ran).
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

from .errors import DiskFullError

_HELD = {signal.SIGINT, signal.SIGTERM}
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class Terminated(SystemExit):
    """SIGTERM arrived during a build (exit status 143, as the default action would give)."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def terminate_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` (only where no handler of the caller's is set)."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive within the block are delivered when it ends.

    Python runs signal handlers in the main thread whichever thread the OS hands a signal to, so a
    thread's signal mask cannot hold them off; the handlers are swapped for ones that only note the
    signal. Outside the main thread nothing is needed: no handler interrupts a build there."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in _HELD}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            signal.raise_signal(pending[0])


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a worker: ask Linux to SIGKILL this process when the build that started it dies (elsewhere
    nothing is done). A parent already gone before the request is caught by the parent-pid check."""
    parent = multiprocessing.parent_process()
    if not sys.platform.startswith("linux") or parent is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent.pid:
        os._exit(1)


def _is_no_space(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE:
            return True
        if "No space left on device" in str(current) or "Disk quota exceeded" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _newest_file(folder: Path) -> str | None:
    newest: tuple[int, str] | None = None
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            try:
                mtime = path.lstat().st_mtime_ns
            except OSError:
                continue
            if newest is None or mtime > newest[0]:
                newest = (mtime, path.relative_to(folder).as_posix())
    return None if newest is None else newest[1]


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def disk_full(exc: BaseException, staging: Path, out: Path) -> DiskFullError | None:
    """The one-line error for a build that ran out of space writing `staging`; None for other errors.
    Call before the staging folder is removed: what it holds tells how far the build got."""
    if not _is_no_space(exc):
        return None
    filename = getattr(exc, "filename", None)
    if filename and Path(filename).is_relative_to(staging):
        writing: str | None = Path(filename).relative_to(staging).as_posix()
    else:
        writing = _newest_file(staging)
    written = _folder_bytes(staging)
    free = shutil.disk_usage(staging.parent if staging.parent.exists() else out.parent).free
    previous = f"; the previous corpus there takes {_mb(_folder_bytes(out))}" if out.is_dir() else ""
    return DiskFullError(
        f"no space left on the device of {out.parent} while writing {writing or 'the staging folder'} "
        f"(the corpus needs more than the {_mb(written)} written before it filled; {_mb(free)} free{previous}): "
        f"free space or choose another --out; {out} is unchanged"
    )
