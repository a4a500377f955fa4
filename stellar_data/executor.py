"""The executor seam: where the ingest tasks (one file or span each, the record-local steps) run.

Today a local pool of worker processes (spawned: OpenCC holds the GIL, so two cores need two
processes). An executor takes the tasks and returns their results in task order, whatever the
completion order, so the data never depends on how or where it ran; a distributed executor runs
the same `ingest` on the same tasks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import TYPE_CHECKING, TypeVar

from .faults import die_with_parent, signals_held
from .ingest import IngestTask, ingest
from .memory import keep_freed_memory, started_keeping_freed_memory
from .sources import SourceFile

if TYPE_CHECKING:
    from .recipe import RunConfig

R = TypeVar("R")

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called as work advances (the CLI draws bars with it)."""


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def worker_count(requested: int | None, run: RunConfig) -> int:
    """The workers of a run: the caller's (`--workers`), else the recipe's `[run] workers`, else every core."""
    if requested is not None:
        return requested
    return run.workers if run.workers is not None else default_workers()


def run_ingest(
    tasks: list[IngestTask], workers: int, progress: Progress | None = None, run: Callable[[IngestTask], R] = ingest
) -> list[R]:
    """`run` (a module-level function: it is sent to the workers) of every task, by default `ingest`;
    results in task order whatever the completion order."""
    done = 0
    if progress:
        progress("read", 0, len(tasks))
    if workers <= 1 or len(tasks) <= 1:
        results = []
        for task in tasks:
            results.append(run(task))
            done += 1
            if progress:
                progress("read", done, len(tasks))
        return results
    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)), mp_context=get_context("spawn"), initializer=_start_worker
    ) as pool:
        # The largest tasks first: the last to finish is a small one, so no worker idles long at the end.
        largest_first = sorted(range(len(tasks)), key=lambda i: -_bytes_to_read(tasks[i].file))
        # The pool starts its processes as tasks are submitted: a signal then would leave a half-started
        # worker behind, so signals wait until all are submitted.
        with started_keeping_freed_memory(), signals_held():
            submitted = {i: pool.submit(run, tasks[i]) for i in largest_first}
        futures = [submitted[i] for i in range(len(tasks))]
        try:
            for future in futures:
                future.result()
                done += 1
                if progress:
                    progress("read", done, len(tasks))
        except BaseException:  # a failed file or a signal: start no more tasks, wait for the running ones
            pool.shutdown(wait=True, cancel_futures=True)  # (and the workers: none is left half-started)
            raise
        return [f.result() for f in futures]


def _start_worker() -> None:
    die_with_parent()
    keep_freed_memory()


def _bytes_to_read(file: SourceFile) -> int:
    if file.span is not None:
        return file.span.stop - file.span.start
    if file.path.is_dir():
        return sum(p.stat().st_size for p in file.path.rglob("*") if p.is_file())
    return file.path.stat().st_size if file.path.is_file() else 0
