"""cache: tokenized splits stored as Arrow, keyed by data, tokenizer, split and encoding settings.

Examples are real: the tiny LLaMA SentencePiece tokenizer encodes the conftest triples through
`data.encode_records` with a short cutoff, so truncations and drops show up in the stats.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from stellar_train import cache
from stellar_train.data import encode_records
from stellar_train.model import batch_text_tokenizer, load_tokenizer, special_ids, text_tokenizer
from stellar_train.prompt import PromptTemplate
from stellar_train.tokenize import IGNORE_INDEX, Encoded

from .conftest import TRIPLES

SETTINGS = {"cutoff_len": 160, "cutoff_policy": "truncate_prompt", "train_on_inputs": False}
# Each triple with a long input, so that the cutoff of 160 tokens truncates some inputs (the template alone is ~120 tokens).
RECORDS = TRIPLES + [{**t, "input": t["instruction"] * 6} for t in TRIPLES]


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return load_tokenizer(str(tiny_model))


@pytest.fixture(scope="module")
def template() -> PromptTemplate:
    return PromptTemplate.load("stellarspeak")


@pytest.fixture
def tokenizer_dir(tiny_model: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model's tokenizer files, free to edit."""
    folder = tmp_path / "base"
    folder.mkdir()
    for name in cache.TOKENIZER_FILES:
        if (tiny_model / name).is_file():
            shutil.copy(tiny_model / name, folder / name)
    return folder


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.json").write_text(json.dumps(RECORDS, ensure_ascii=False), encoding="utf-8")
    return folder


class Builder:
    """A build callable that encodes RECORDS for real and counts its calls."""

    def __init__(self, tokenizer, template: PromptTemplate, settings: dict = SETTINGS) -> None:
        self.tokenizer, self.template, self.settings, self.calls = tokenizer, template, settings, 0

    def __call__(self):
        self.calls += 1
        examples, stats = encode_records(
            RECORDS, text_tokenizer(self.tokenizer), special_ids(self.tokenizer), self.template,
            self.settings["cutoff_len"], self.settings["cutoff_policy"], self.settings["train_on_inputs"],
            batch_text_tokenizer(self.tokenizer),
        )  # fmt: skip
        return examples, stats.as_dict()


def key_for(data: Path, tokenizer_dir: Path, template: PromptTemplate, split="train", **changes) -> cache.CacheKey:
    key = cache.cache_key(str(data), split, cache.tokenizer_identity(str(tokenizer_dir)), template, SETTINGS | changes)
    assert key is not None
    return key


def test_round_trip_equals_the_built_examples_and_a_hit_does_not_build(
    tokenizer, template, data_dir, tokenizer_dir, tmp_path
) -> None:
    key, build = key_for(data_dir, tokenizer_dir, template), Builder(tokenizer, template)
    built, built_stats, hit = cache.encoded_split(tmp_path / "cache", key, build)
    assert not hit and build.calls == 1
    assert len(built) > len(TRIPLES) and built_stats["total"] == len(RECORDS)
    assert built_stats["truncated_input"] > 0  # the cutoff did something worth caching
    assert any(IGNORE_INDEX in e.labels for e in built) and max(max(e.input_ids) for e in built) > 255
    assert key.path(tmp_path / "cache").is_file()

    loaded, loaded_stats, hit = cache.encoded_split(tmp_path / "cache", key, build)
    assert hit and build.calls == 1
    assert loaded == built and loaded_stats == built_stats
    assert list(loaded_stats) == list(built_stats)  # key order too
    assert all(type(i) is int for e in loaded for i in e.input_ids + e.labels)


def test_the_file_is_arrow_with_int32_lists_and_stats_in_the_metadata(
    tokenizer, template, data_dir, tokenizer_dir, tmp_path
) -> None:
    key = key_for(data_dir, tokenizer_dir, template)
    built, stats, _ = cache.encoded_split(tmp_path, key, Builder(tokenizer, template))
    table = pa.ipc.open_file(key.path(tmp_path)).read_all()
    assert table.schema.field("input_ids").type == pa.list_(pa.int32())
    assert table.schema.field("labels").type == pa.list_(pa.int32())
    assert table.num_rows == len(built) > 0
    assert json.loads(table.schema.metadata[cache.STATS_META]) == stats
    assert table.column("labels")[0].as_py() == built[0].labels


def test_every_key_component_changes_the_key(tokenizer, template, data_dir, tokenizer_dir, tmp_path) -> None:
    base = key_for(data_dir, tokenizer_dir, template)
    assert key_for(data_dir, tokenizer_dir, template) == base  # deterministic
    (data_dir / ".notes").write_text("hidden files are not data")
    assert key_for(data_dir, tokenizer_dir, template) == base

    other_template = dataclasses.replace(template, prompt_no_input=template.prompt_no_input + " ")
    changed = {
        "cutoff_len": key_for(data_dir, tokenizer_dir, template, cutoff_len=161),
        "cutoff_policy": key_for(data_dir, tokenizer_dir, template, cutoff_policy="drop"),
        "train_on_inputs": key_for(data_dir, tokenizer_dir, template, train_on_inputs=True),
        "min_instruction_share": key_for(data_dir, tokenizer_dir, template, min_instruction_share=0.5),
        "template": key_for(data_dir, tokenizer_dir, other_template),
        "split": key_for(data_dir, tokenizer_dir, template, split="validation"),
    }
    config = tokenizer_dir / "tokenizer_config.json"
    config.write_text(config.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    changed["tokenizer file"] = key_for(data_dir, tokenizer_dir, template)
    with (data_dir / "train.json").open("a", encoding="utf-8") as handle:
        handle.write(" ")
    changed["data file"] = key_for(data_dir, tokenizer_dir, template)
    digests = {name: key.digest() for name, key in changed.items()}
    assert base.digest() not in digests.values()
    assert len(set(digests.values())) == len(digests)

    # Each changed key misses (builds); the unchanged one still hits.
    build = Builder(tokenizer, template)
    cache.encoded_split(tmp_path / "cache", base, build)
    for key in changed.values():
        assert not cache.encoded_split(tmp_path / "cache", key, build)[2]
    assert build.calls == 1 + len(changed)
    assert cache.encoded_split(tmp_path / "cache", base, build)[2] and build.calls == 1 + len(changed)


def test_a_corpus_is_keyed_by_its_manifest(tokenizer_dir, template, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text('{"files": {"train-0.parquet": "ab12"}}')
    first = key_for(corpus, tokenizer_dir, template)
    assert first.data.startswith("corpus:")
    (corpus / "unlisted.txt").write_text("not in the manifest")
    assert key_for(corpus, tokenizer_dir, template) == first
    (corpus / "manifest.json").write_text('{"files": {"train-0.parquet": "cd34"}}')
    assert key_for(corpus, tokenizer_dir, template).digest() != first.digest()


def test_a_hub_tokenizer_is_keyed_by_its_saved_state(tokenizer) -> None:
    first = cache.tokenizer_identity("someone/hub-model", tokenizer)
    assert cache.tokenizer_identity("someone/hub-model", tokenizer) == first
    other = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    other.add_tokens(["<extra_token>"])
    assert cache.tokenizer_identity("someone/hub-model", other) != first
    with pytest.raises(ValueError, match="pass the loaded tokenizer"):
        cache.tokenizer_identity("someone/hub-model")


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"",  # empty
        lambda b: b"not an arrow file at all" * 10,
    ],
    ids=["truncated", "empty", "garbage"],
)
def test_a_damaged_cache_file_is_rebuilt(
    damage, tokenizer, template, data_dir, tokenizer_dir, tmp_path, caplog
) -> None:
    key, build = key_for(data_dir, tokenizer_dir, template), Builder(tokenizer, template)
    built, stats, _ = cache.encoded_split(tmp_path, key, build)
    path = key.path(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    again, again_stats, hit = cache.encoded_split(tmp_path, key, build)
    assert not hit and build.calls == 2 and again == built and again_stats == stats
    assert "unreadable" in caplog.text
    assert cache.encoded_split(tmp_path, key, build)[2]  # the rebuilt file is sound


def test_changed_ids_or_a_foreign_key_are_rejected(tokenizer, template, data_dir, tokenizer_dir) -> None:
    key = key_for(data_dir, tokenizer_dir, template)
    examples, stats = Builder(tokenizer, template)()
    table = cache.to_table(key, examples, stats)
    assert cache.from_table(table, key) == (examples, stats)
    tampered = [dataclasses.replace(examples[0], input_ids=[*examples[0].input_ids[:-1], 7]), *examples[1:]]
    forged = cache.to_table(key, tampered, stats).replace_schema_metadata(table.schema.metadata)
    with pytest.raises(ValueError, match="checksum"):
        cache.from_table(forged, key)
    with pytest.raises(ValueError, match="key differs"):
        cache.from_table(table, key_for(data_dir, tokenizer_dir, template, cutoff_len=99))


def test_a_failed_build_leaves_no_file(template, data_dir, tokenizer_dir, tmp_path) -> None:
    def failing():
        raise RuntimeError("tokenizer exploded")

    key = key_for(data_dir, tokenizer_dir, template)
    with pytest.raises(RuntimeError, match="exploded"):
        cache.encoded_split(tmp_path / "cache", key, failing)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_failed_write_leaves_no_partial_file_and_training_goes_on(
    tokenizer, template, data_dir, tokenizer_dir, tmp_path, monkeypatch, caplog
) -> None:
    key, build = key_for(data_dir, tokenizer_dir, template), Builder(tokenizer, template)
    folder = tmp_path / "cache"

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.os, "fsync", disk_full)
    examples, stats, hit = cache.encoded_split(folder, key, build)
    assert not hit and len(examples) > 0 and stats["total"] == len(RECORDS)
    assert list(folder.iterdir()) == []  # neither the file nor its temporary
    assert "cannot write" in caplog.text

    monkeypatch.undo()
    assert not cache.encoded_split(folder, key, build)[2]
    assert list(folder.iterdir()) == [key.path(folder)]


def test_disabled_or_unkeyed_caching_builds_and_writes_nothing(tokenizer, template, tmp_path) -> None:
    build = Builder(tokenizer, template)
    assert cache.cache_key("someone/hub-dataset", "train", "tok", template, SETTINGS) is None
    for cache_dir, key in ((None, None), (tmp_path, None)):
        examples, _, hit = cache.encoded_split(cache_dir, key, build)
        assert not hit and examples
    assert build.calls == 2 and list(tmp_path.iterdir()) == []


def test_resolve_cache_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "env"))
    assert cache.resolve_cache_dir("") == tmp_path / "env"
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.resolve_cache_dir("") == tmp_path / "xdg" / "stellar_train" / "tokenized"
    assert cache.resolve_cache_dir("none") is None
    assert cache.resolve_cache_dir("OFF") is None
    assert cache.resolve_cache_dir(str(tmp_path / "shared")) == tmp_path / "shared"


def test_config_key_reads_the_encoding_fields(template, data_dir, tokenizer_dir) -> None:
    @dataclasses.dataclass
    class Config:
        data: str
        cutoff_len: int = 160
        cutoff_policy: str = "truncate_prompt"
        train_on_inputs: bool = False
        learning_rate: float = 1e-4

    tokenizer_id = cache.tokenizer_identity(str(tokenizer_dir))
    key = cache.config_key(Config(str(data_dir)), tokenizer_id, template, "train")
    assert key == key_for(data_dir, tokenizer_dir, template)
    other_lr = cache.config_key(Config(str(data_dir), learning_rate=1.0), tokenizer_id, template, "train")
    assert other_lr == key  # not an encoding setting


def test_a_reader_racing_writers_sees_a_whole_file_or_none(template, data_dir, tokenizer_dir, tmp_path) -> None:
    """Two threads rewrite the file while a third reads it: every read is complete and valid."""
    key = key_for(data_dir, tokenizer_dir, template)
    examples = [Encoded(list(range(n % 300 + 1)), [IGNORE_INDEX] * (n % 300 + 1)) for n in range(1000)]
    stats = {"total": len(examples), "kept": len(examples)}
    path, stop, reads, failures = key.path(tmp_path), threading.Event(), [], []

    def write() -> None:
        while not stop.is_set():
            cache.write_split(path, key, examples, stats)

    def read() -> None:
        while len(reads) < 10:
            if path.exists():
                try:
                    reads.append(cache.read_split(path, key) == (examples, stats))
                except Exception as exc:
                    failures.append(exc)

    writers = [threading.Thread(target=write) for _ in range(2)]
    for thread in writers:
        thread.start()
    read()
    stop.set()
    for thread in writers:
        thread.join()
    assert failures == [] and reads == [True] * 10
    assert list(tmp_path.glob("*.arrow")) == [path] and not list(tmp_path.glob(".*.tmp"))


def test_the_file_name_is_the_split_and_the_digest_even_for_odd_split_names(template, data_dir, tokenizer_dir) -> None:
    key = key_for(data_dir, tokenizer_dir, template, split="../eval/held out")
    path = key.path(Path("/cache"))
    assert path.parent == Path("/cache") and path.name == f".._eval_held_out-{key.digest()[:32]}.arrow"
