"""The per-file stage: read -> assemble -> normalize -> validate, plus the per-record keys the
global steps need (content hash, split draw, order draw). Files are independent, so this stage runs
in worker processes (OpenCC holds the GIL: two cores need two processes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .errors import SourceFileError
from .hashing import FileState, content_keys, file_sha256, seeded_u64s, seeded_units
from .memory import collector_paused
from .paths import folder_files
from .recipe import SourceSpec
from .record import EXTRA_PREFIX
from .resources import load_schema
from .similarity.eval_index import EVAL_GRAMS, GramIndex
from .similarity.fold import Grams
from .similarity.minhash import SIGNATURE, signatures
from .similarity.records import fold_records
from .sources import ADAPTERS, Entry, ItemBatch, SourceFile
from .steps.assemble import assemble
from .steps.base import RECORD_STEPS, RecordStep, StepStats
from .steps.neardup import NearDedupConfig
from .steps.normalize import Normalize, NormalizeConfig
from .steps.quality import QUALITY_STEPS
from .steps.quality.base import Passing
from .steps.validate import Validate

KEY_COLUMNS = ("_hash", "_split_u", "_order", "_rank", "_source_order", "_file_index")


@dataclass(frozen=True)
class IngestTask:
    spec: SourceSpec
    file: SourceFile
    file_index: int
    seed: int
    protected_terms: tuple[str, ...]
    records_path: Path | None = None
    """Where to write the records (Arrow IPC); None keeps them in the result (check / tests)."""
    near_dedup: NearDedupConfig | None = None
    """When set, each record's MinHash signature is computed here, in the worker."""
    eval_index: GramIndex | None = None
    """When set, each record's n-grams found in the eval questions' index (`_eval_grams`) are kept."""
    read_batch: int = 50_000
    """Items assembled and normalized at a time: only one batch's Python objects are alive at once,
    the rest of the file is already in compact Arrow columns."""
    on_started: Callable[[], None] | None = None
    """A test seam: called once the files are stat'ed, before they are read (a test changes a
    file there)."""


@dataclass
class IngestResult:
    source: str
    file: str
    files: dict[str, dict[str, Any]]
    """Every file read, relative path -> {sha256, bytes} (a folder source lists each file in it; of
    a file read as spans, the first span's task lists it)."""
    stats: list[StepStats]
    quarantine: pl.DataFrame
    records: pl.DataFrame | None
    records_path: Path | None


FileStates = dict[Path, FileState]


def _name_of(file: SourceFile, path: Path) -> str:
    return file.relative if path == file.path else f"{file.relative}/{path.relative_to(file.path).as_posix()}"


def file_states(file: SourceFile) -> FileStates:
    """os.stat of every file the task reads (a folder source: each file under it), taken before
    reading: `check_unchanged` compares them with a second stat, after hashing."""
    try:
        paths = folder_files(file.path) if file.path.is_dir() else [file.path]
        return {p: FileState.of(p) for p in paths}
    except FileNotFoundError as exc:
        raise SourceFileError(f"{file.relative}: file not found ({exc.filename})") from None
    except OSError as exc:
        raise SourceFileError(f"{file.relative}: cannot read: {exc.strerror}") from None


def check_unchanged(file: SourceFile, before: FileStates) -> None:
    """Every file as `before` found it (stat'ed again now); else the read mixed two versions."""
    try:
        after = file_states(file)
    except SourceFileError:  # the file itself is gone
        after = {}
    for path, state in before.items():
        if path not in after:
            raise SourceFileError(f"{_name_of(file, path)}: removed while it was read; rebuild when it is stable")
        if changed := state.differences(after[path]):
            raise SourceFileError(
                f"{_name_of(file, path)}: changed while it was read ({'/'.join(changed)} differ); "
                "rebuild when it is stable"
            )
    if added := sorted(set(after) - set(before)):
        raise SourceFileError(f"{_name_of(file, added[0])}: added while it was read; rebuild when it is stable")


def files_read(file: SourceFile, before: FileStates) -> dict[str, dict[str, Any]]:
    """Every file read, relative path -> {sha256, bytes}, hashed after reading, 1 MiB at a time
    (inputs reach 800 MB). The caller then checks the files against `before` (`check_unchanged`),
    so that the hash recorded is of the bytes read."""
    return {_name_of(file, p): {"sha256": file_sha256(p), "bytes": state.size} for p, state in before.items()}


def with_keys(frame: pl.DataFrame, task: IngestTask) -> pl.DataFrame:
    seed = task.seed
    return frame.with_columns(
        content_keys(frame),
        seeded_units(seed, "split", frame["group"]).alias("_split_u"),
        seeded_u64s(seed, "order", frame["id"]).alias("_order"),
        pl.lit(task.spec.dedup_rank, dtype=pl.Int64).alias("_rank"),
        pl.lit(task.spec.order, dtype=pl.Int64).alias("_source_order"),
        pl.lit(task.file_index, dtype=pl.Int64).alias("_file_index"),
    )


SIMILARITY_BATCH = 8192
"""Records folded at a time: bounds the numpy scratch arrays (fresh memory is slow to touch)."""


def similarity_columns(frame: pl.DataFrame, task: IngestTask) -> list[pl.Series]:
    """The MinHash signature and / or the eval-gram hits of every record, folded once per batch."""
    signature_parts, hit_parts = [], []
    for offset in range(0, frame.height, SIMILARITY_BATCH):
        batch = frame.slice(offset, SIMILARITY_BATCH)
        grams = Grams(fold_records(batch, {task.spec.name: task.spec.opencc}, task.protected_terms))
        if task.near_dedup is not None:
            signature_parts.append(signatures(grams, task.near_dedup))
        if task.eval_index is not None:
            hit_parts.append(task.eval_index.hits(grams))
    columns = []
    if task.near_dedup is not None:
        k = task.near_dedup.num_perm
        values = np.concatenate(signature_parts) if signature_parts else np.empty((0, k), dtype=np.uint32)
        columns.append(pl.Series(SIGNATURE, values, dtype=pl.Array(pl.UInt32, k)))
    if task.eval_index is not None:
        columns.append(pl.concat(hit_parts) if hit_parts else pl.Series(EVAL_GRAMS, [], dtype=pl.List(pl.UInt64)))
    return columns


def record_steps(task: IngestTask) -> tuple[RecordStep, ...]:
    """The record-local steps after `read`, in RECORD_STEPS order, for one file: a quality step the
    source's recipe entry does not run (`spec.filters`) passes every record."""
    spec = task.spec
    built: dict[str, RecordStep] = {
        "normalize": Normalize(NormalizeConfig(spec.opencc, task.protected_terms)),
        "validate": Validate(load_schema("record.schema.json")),
    }
    for name, config in spec.filters:
        built[name] = QUALITY_STEPS[name](config, spec)
    return tuple(built.get(name, Passing(name)) for name in RECORD_STEPS[1:])


def entry_batches(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    """The adapter's entries in lists of about `size` items (an ItemBatch counts its items); always
    at least one list, so that an empty file still gives its (empty) frame."""
    batch: list[Entry] = []
    count, yielded = 0, False
    for entry in entries:
        batch.append(entry)
        count += len(entry) if isinstance(entry, ItemBatch) else 1
        if count >= size:
            yield batch
            batch, count, yielded = [], 0, True
    if batch or not yielded:
        yield batch


def run_record_steps(task: IngestTask) -> tuple[pl.DataFrame, pl.DataFrame, list[StepStats]]:
    """The file's records through the record-local steps, batch by batch: (records, quarantine rows in
    step order, stats per step in RECORD_STEPS order)."""
    spec, file = task.spec, task.file
    adapter = ADAPTERS[spec.adapter]
    options = adapter.options() if spec.options is None else spec.options
    entries = adapter.reader(file, options, spec.lang)
    steps = record_steps(task)
    stats = [StepStats(name, spec.name) for name in RECORD_STEPS]
    frames: list[pl.DataFrame] = []
    rejected: list[list[pl.DataFrame]] = [[] for _ in stats]
    for batch in entry_batches(entries, task.read_batch):
        frame, quarantine, batch_read = assemble(batch, spec, file)
        rejected[0].append(quarantine)
        stats[0].merge(batch_read)
        for position, step in enumerate(steps, start=1):
            result = step.run(frame, spec.name)
            frame = result.kept
            rejected[position].append(result.rejected)
            stats[position].merge(result.stats)
        frames.append(frame)
    frame = pl.concat(frames, how="diagonal_relaxed")
    extra = [c for c in frame.columns if c.startswith(EXTRA_PREFIX)]
    if extra:  # a structured field absent from a whole batch
        frame = frame.with_columns(pl.col(extra).fill_null(""))
    return frame, pl.concat([part for parts in rejected for part in parts]), stats


def ingest(task: IngestTask) -> IngestResult:
    spec, file = task.spec, task.file
    before = file_states(file)
    if task.on_started is not None:
        task.on_started()
    with collector_paused():
        frame, quarantine, stats = run_record_steps(task)
    frame = with_keys(frame, task)
    if task.near_dedup is not None or task.eval_index is not None:
        frame = frame.with_columns(similarity_columns(frame, task))
    # Of a file read as spans, the first span's task hashes it; every task checks it is unchanged
    # since its start, after the hashing: the hash recorded is of the bytes read.
    files = files_read(file, before) if file.span is None or file.span.start == 0 else {}
    check_unchanged(file, before)
    if task.records_path is not None:
        frame.write_ipc(task.records_path, compression="uncompressed")
    return IngestResult(
        source=spec.name,
        file=file.relative,
        files=files,
        stats=stats,
        quarantine=quarantine,
        records=None if task.records_path is not None else frame,
        records_path=task.records_path,
    )
