"""Tokenized splits cached as Arrow files, so a corpus is encoded once per tokenizer and encoding config.

One file per split: `<cache dir>/<split>-<key digest>.arrow`, an Arrow IPC (Feather v2) file, LZ4
compressed, with `input_ids` and `labels` as `list<int32>` columns and, in the schema metadata, the
split's encoding stats (JSON), the key itself (JSON) and a sha256 of the id buffers. The key covers:

- the data: `corpus:<sha256 of manifest.json>` for a built corpus (the manifest lists every shard's
  sha256), else the resolved path with the size and mtime of each of its files (hidden files
  skipped). A name that is no local path (a Hub dataset) has no stable identity here: not cached.
- the tokenizer: sha256 of the base model folder's tokenizer files (`TOKENIZER_FILES`, those
  present: tokenizer.json / tokenizer_config.json / special_tokens_map.json / tokenizer.model and
  the vocab files of other tokenizer kinds), or of what `save_pretrained` writes for a tokenizer
  loaded from a Hub id; plus the transformers / tokenizers / sentencepiece versions (an upgrade may
  tokenize differently).
- the split name; the template's content; the encoding settings (cutoff_len, cutoff_policy,
  train_on_inputs, min_instruction_share, ... whatever the caller passes); `CACHE_VERSION` and a
  sha256 of the encoding code (stellar_train's tokenize.py, data.py, prompt.py), so a change there
  invalidates old files without anyone remembering to bump the version.

Writes are atomic (a temporary file in the same folder, then `os.replace`): a reader sees the whole
file or none (a process killed mid-write leaves a `.<name>.*.tmp` behind, never a bad `.arrow`). A
file that cannot be read, fails its checksum or holds another key is rebuilt (a warning), never an
error; a cache that cannot be written is a warning too (training goes on uncached). Under
`torchrun` (recipe.prepare) each node's first process builds and writes while the others wait for
the file, then read it; on a shared filesystem two nodes may both write, which is safe (same
content, the last `os.replace` wins), and a main process that cannot write it stops the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stellar_data.memory import collector_paused

from . import data as data_module
from . import model as model_module
from . import prompt as prompt_module
from . import tokenize as tokenize_module
from .prompt import PromptTemplate
from .tokenize import Encoded

CACHE_VERSION = 1
"""Bump when the file layout or the meaning of a cached example changes."""
CACHE_ENV = "STELLAR_TRAIN_CACHE"
DISABLED = ("none", "off")
TOKENIZER_FILES = (
    *("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"),
    *("added_tokens.json", "vocab.json", "merges.txt", "vocab.txt"),
)
ENCODING_FIELDS = ("cutoff_len", "cutoff_policy", "train_on_inputs", "min_instruction_share")
"""The TrainConfig fields that change what encoding produces (`config_key` reads those present)."""
KEY_META, STATS_META, CHECKSUM_META = b"stellar_train.key", b"stellar_train.stats", b"stellar_train.sha256"
WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4") else None)
"""LZ4 buffers: labels are long runs of -100, and decompression is nearly free."""
SCHEMA = pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32()))])

log = logging.getLogger("stellar_train")

Build = Callable[[], tuple[list[Encoded], dict[str, Any]]]


@dataclass(frozen=True)
class CacheKey:
    """What a cached split depends on; every field is a string, `settings` canonical JSON."""

    split: str
    data: str
    tokenizer: str
    template: str
    settings: str
    code: str
    version: int = CACHE_VERSION

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def path(self, cache_dir: Path) -> Path:
        safe_split = re.sub(r"[^A-Za-z0-9_.-]", "_", self.split)
        return Path(cache_dir) / f"{safe_split}-{self.digest()[:32]}.arrow"


def resolve_cache_dir(setting: str) -> Path | None:
    """The cache folder for the `tokenized_cache_dir` setting: '' -> $STELLAR_TRAIN_CACHE, else
    $XDG_CACHE_HOME/stellar_train/tokenized (~/.cache by default), so neither a dry run nor a run
    refused after tokenizing leaves anything in output_dir; 'none' / 'off' -> None (caching
    disabled); anything else -> that folder."""
    if setting.strip().lower() in DISABLED:
        return None
    if setting:
        return Path(setting).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "stellar_train" / "tokenized"


def data_identity(data: str) -> str | None:
    """The data's identity, or None when it is not a local file or folder (nothing to hash)."""
    manifest_sha = data_module.corpus_manifest_sha256(data)
    if manifest_sha is not None:
        return f"corpus:{manifest_sha}"
    path = Path(data).resolve()
    if path.is_file():
        files = {path.name: path}
    elif path.is_dir():
        files = {str(p.relative_to(path)): p for p in path.rglob("*") if p.is_file()}
        files = {name: p for name, p in sorted(files.items()) if not any(s.startswith(".") for s in Path(name).parts)}
    else:
        return None
    digest = hashlib.sha256(str(path).encode())
    for name, file in files.items():
        stat = file.stat()
        digest.update(f"\0{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"files:{digest.hexdigest()}"


def tokenizer_identity(base_model: str, tokenizer: Any = None) -> str:
    """sha256 of the tokenizer files in the base model folder, else (a Hub id, or a folder without
    them) of what `tokenizer.save_pretrained` writes; with the tokenizer libraries' versions."""
    folder = Path(base_model)
    files = [folder / name for name in TOKENIZER_FILES if (folder / name).is_file()] if folder.is_dir() else []
    if files:
        return _hash_files(files)
    if tokenizer is None:
        raise ValueError(f"base_model {base_model}: no tokenizer files there; pass the loaded tokenizer")
    with tempfile.TemporaryDirectory() as saved:
        tokenizer.save_pretrained(saved)
        return _hash_files(sorted(Path(saved).iterdir()))


def _hash_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for name in ("transformers", "tokenizers", "sentencepiece"):
        digest.update(f"{name}={_version(name)}\0".encode())
    for file in files:
        digest.update(f"{file.name}\0".encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def code_identity() -> str:
    """sha256 of the modules whose code decides what an encoded example is."""
    digest = hashlib.sha256()
    for module in (tokenize_module, data_module, prompt_module, model_module):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def cache_key(
    data: str, split: str, tokenizer_id: str, template: PromptTemplate, settings: Mapping[str, Any]
) -> CacheKey | None:
    """The key for one split, or None when the data has no local identity (then do not cache).
    `settings`: the encoding settings (JSON values), e.g. {"cutoff_len": 512, ...}."""
    data_id = data_identity(data)
    if data_id is None:
        return None
    template_json = json.dumps(dataclasses.asdict(template), sort_keys=True, ensure_ascii=False)
    settings_json = json.dumps(dict(settings), sort_keys=True, ensure_ascii=False)
    return CacheKey(split, data_id, tokenizer_id, template_json, settings_json, code_identity())


def config_key(config: Any, tokenizer_id: str, template: PromptTemplate, split: str) -> CacheKey | None:
    """`cache_key` for a TrainConfig: its data and the `ENCODING_FIELDS` it has."""
    settings = {name: getattr(config, name) for name in ENCODING_FIELDS if hasattr(config, name)}
    return cache_key(config.data, split, tokenizer_id, template, settings)


def encoded_split(
    cache_dir: Path | None, key: CacheKey | None, build: Build
) -> tuple[list[Encoded], dict[str, Any], bool]:
    """(examples, stats, hit): read from the cache when a valid file for `key` is there, else
    `build()` and write it. No cache dir or no key: build, nothing is written. Put the data loading
    inside `build` too, so a hit skips reading the records."""
    if cache_dir is None or key is None:
        examples, stats = build()
        return examples, stats, False
    path = key.path(cache_dir)
    if path.is_file():
        started = time.perf_counter()
        try:
            examples, stats = read_split(path, key)
        except Exception as exc:  # whatever is wrong with a cache file, building again is the answer
            log.warning("tokenized cache %s is unreadable (%s); rebuilding it", path, exc)
        else:
            log.info(
                "tokenized %s: %d examples from %s (%.2f s)",
                key.split,
                len(examples),
                path,
                time.perf_counter() - started,
            )
            return examples, stats, True
    started = time.perf_counter()
    examples, stats = build()
    built = time.perf_counter() - started
    try:
        write_split(path, key, examples, stats)
    except OSError as exc:
        log.warning("tokenized cache %s: cannot write (%s); continuing without it", path, exc)
    else:
        log.info("tokenized %s: %d examples in %.2f s, cached in %s", key.split, len(examples), built, path)
    return examples, stats, False


def to_table(key: CacheKey, examples: list[Encoded], stats: Mapping[str, Any]) -> pa.Table:
    arrays = [pa.array([getattr(e, name) for e in examples], pa.list_(pa.int32())) for name in SCHEMA.names]
    metadata = {
        KEY_META: key.to_json().encode(),
        STATS_META: json.dumps(dict(stats)).encode(),
        CHECKSUM_META: _checksum(arrays).encode(),
    }
    return pa.Table.from_arrays(arrays, schema=SCHEMA.with_metadata(metadata))


def from_table(table: pa.Table, key: CacheKey) -> tuple[list[Encoded], dict[str, Any]]:
    """The examples and stats in a cached table; ValueError when it is not a sound file for `key`."""
    meta = table.schema.metadata or {}
    if meta.get(KEY_META) != key.to_json().encode():
        raise ValueError("its stored key differs from this run's")
    if not table.schema.remove_metadata().equals(SCHEMA):
        raise ValueError(f"unexpected schema {table.schema.remove_metadata()}")
    arrays = [table.column(name).combine_chunks() for name in SCHEMA.names]
    if meta.get(CHECKSUM_META) != _checksum(arrays).encode():
        raise ValueError("checksum mismatch")
    stats = json.loads(meta.get(STATS_META, b"null"))
    if not isinstance(stats, dict) or stats.get("kept", len(table)) != len(table):
        raise ValueError(f"stats {stats} do not match its {len(table)} examples")
    with collector_paused():  # millions of new int lists, no cycles: 3-5x faster without the GC
        ids, labels = (array.to_pylist() for array in arrays)
        if any(len(i) != len(x) for i, x in zip(ids, labels, strict=True)):
            raise ValueError("an example's labels and input_ids differ in length")
        return [Encoded(i, x) for i, x in zip(ids, labels, strict=True)], stats


def _flat(array: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets from 0, values) of a list<int32> array; ValueError on null rows."""
    if array.null_count:
        raise ValueError("null rows")
    offsets = array.offsets.to_numpy()
    if not len(offsets):
        return np.zeros(1, np.int32), np.zeros(0, np.int32)
    values = array.values.to_numpy()[offsets[0] : offsets[-1]]
    return offsets - offsets[0], values


def _checksum(arrays: list[pa.ListArray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        for part in _flat(array):
            digest.update(np.ascontiguousarray(part, dtype="<i4").tobytes())
    return digest.hexdigest()


def read_split(path: Path, key: CacheKey) -> tuple[list[Encoded], dict[str, Any]]:
    with pa.OSFile(str(path), "rb") as source:  # not a memory map: a file truncated under one is SIGBUS
        return from_table(pa.ipc.open_file(source).read_all(), key)


def write_split(path: Path, key: CacheKey, examples: list[Encoded], stats: Mapping[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, flushed to disk, renamed over `path`."""
    table = to_table(key, examples, stats)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as sink:
            with pa.ipc.new_file(sink, table.schema, options=WRITE_OPTIONS) as writer:
                writer.write_table(table)
            sink.flush()
            os.fsync(sink.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; other users sharing the cache may read it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
