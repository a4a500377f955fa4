"""Publishing to the Hugging Face Hub, against the loopback stub in tests/hub_stub.py (no network):
one atomic commit per publish, stale shards removed, the card's YAML merged, retries, the token kept
secret, `datasets.load_dataset` reading the result back, and fetching pinned source files from the Hub.

A live smoke test against the real Hub runs only on request (see test_live_hub_smoke)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import stellar_data as sd
from stellar_data.cli import app
from stellar_data.fetch import fetch_file
from stellar_data.publish import RetryPolicy
from stellar_data.recipe import FetchSpec
from stellar_data.record import RECORD_SCHEMA
from stellar_data.writers.card import card_body, card_metadata, features, split_card
from tests.conftest import ROOT
from tests.hub_stub import HubStub, hub_client

DEFAULT_RECIPE = ROOT / "corpus" / "default.toml"
HELDOUT = "astro_qa_heldout"
TOKEN = "hf_stubSECRETtoken0123456789abcdef"


def no_sleep(seconds: float) -> None:
    pass


# -- corpora ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    return sd.build(DEFAULT_RECIPE, out=tmp_path_factory.mktemp("publish") / "corpus", workers=1)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    """The default recipe with another seed and 50-record shards: other shard names, other rows."""
    recipe = dataclasses.replace(sd.load_recipe(DEFAULT_RECIPE), shard_records=50, seed=7)
    return sd.build(recipe, out=tmp_path_factory.mktemp("publish") / "rebuilt", workers=1)


def shards(corpus: sd.Corpus) -> list[str]:
    manifest = corpus.manifest
    return sorted(
        [s for split in manifest["splits"].values() for s in split["shards"]]
        + [s for table in manifest["tables"].values() for s in table["shards"]]
    )


def local_ids(corpus: sd.Corpus, paths: list[str]) -> list[str]:
    return [i for path in paths for i in pq.read_table(corpus.path / path, columns=["id"]).column("id").to_pylist()]


def rows(corpus: sd.Corpus, paths: list[str]) -> int:
    return sum(pq.ParquetFile(corpus.path / path).metadata.num_rows for path in paths)


# -- the stub, and nothing but the stub --------------------------------------------------------------


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Refuse (and record) any connection that is not to 127.0.0.1 / ::1."""
    attempts: list = []
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
            attempts.append(address)
            raise ConnectionRefusedError(f"test tried to reach {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts
    assert attempts == [], f"traffic off the loopback: {attempts}"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loopback_only: list) -> Iterator[HubStub]:
    with HubStub() as stub, hub_client(monkeypatch, stub, tmp_path / "hf", token=TOKEN):
        yield stub
    assert stub.errors == [], "the stub failed:\n" + "\n".join(stub.errors)
    assert stub.unhandled == [], f"requests the stub does not know: {stub.unhandled}"


def card(hub: HubStub, repo: str) -> tuple[dict, str]:
    return split_card(hub.readme(repo))


# -- the local layout --------------------------------------------------------------------------------


def test_the_built_folder_loads_with_datasets(corpus: sd.Corpus) -> None:
    manifest = corpus.manifest
    loaded = datasets.load_dataset(str(corpus.path))
    assert {name: len(split) for name, split in loaded.items()} == {
        name: split["records"] for name, split in manifest["splits"].items()
    }
    heldout = datasets.load_dataset(str(corpus.path), HELDOUT)
    assert {name: len(split) for name, split in heldout.items()} == {"test": manifest["tables"][HELDOUT]["records"]}


# -- publishing --------------------------------------------------------------------------------------


def test_a_first_publish_creates_the_repo_and_commits_everything_at_once(hub: HubStub, corpus: sd.Corpus) -> None:
    result = sd.publish(corpus.path, "ns/first", sleep=no_sleep)

    initial, ours = hub.commits("ns/first")  # exactly one commit after the Hub's initial one
    assert set(initial.files) == {".gitattributes"}
    published = shards(corpus)
    assert any(p.startswith("data/") for p in published) and any(p.startswith(f"{HELDOUT}/") for p in published)
    assert set(ours.files) == {".gitattributes", "README.md", *published}
    for path in published:
        assert ours.files[path].content == (corpus.path / path).read_bytes()
        assert ours.files[path].lfs
    assert ours.summary == "Publish stellarspeak-sample (stellar-data)"
    assert ours.description == f"recipe sha256 {corpus.manifest['recipe']['sha256']}, seed {corpus.manifest['seed']}"
    assert (result.commit_oid, result.attempts, result.deleted) == (ours.sha, 1, ())
    assert set(result.added) == {*published, "README.md"}
    assert result.commit_url.endswith(f"/datasets/ns/first/commit/{ours.sha}")
    assert hub.calls("commit") == 1 and hub.calls("lfs_upload") == len(published)
    assert not hub.repos["ns/first"].private


def test_the_published_card_describes_the_corpus(hub: HubStub, corpus: sd.Corpus) -> None:
    sd.publish(corpus.path, "ns/card", sleep=no_sleep)
    meta, body = card(hub, "ns/card")
    manifest = corpus.manifest
    splits = manifest["splits"]

    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*.parquet"},
                {"split": "validation", "path": "data/validation-*.parquet"},
            ],
        },
        {"config_name": HELDOUT, "data_files": [{"split": "test", "path": f"{HELDOUT}/test-*.parquet"}]},
    ]  # no quarantine config: quarantine.parquet stays local
    assert "quarantine.parquet" not in hub.files("ns/card")
    infos = {info["config_name"]: info for info in meta["dataset_info"]}
    assert infos["default"]["features"] == features(list(RECORD_SCHEMA))
    assert infos["default"]["splits"] == [
        {"name": name, "num_bytes": splits[name]["num_bytes"], "num_examples": rows(corpus, splits[name]["shards"])}
        for name in ("train", "validation")
    ]
    table = manifest["tables"][HELDOUT]
    assert infos[HELDOUT]["splits"] == [
        {"name": "test", "num_bytes": table["num_bytes"], "num_examples": rows(corpus, table["shards"])}
    ]
    assert [s["num_examples"] for s in infos["default"]["splits"]] == [305, 30]

    licences = {source["license"] for source in manifest["sources"].values()}
    assert len(licences) > 1  # so the card says "other", and names each licence in the body
    assert (meta["license"], meta["license_name"]) == ("other", "mixed-per-source")
    assert meta["language"] == ["en", "zh"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert {"instruction-tuning", "sft", "astronomy", "math", "general", "self_cognition"} <= set(meta["tags"])
    assert meta["pretty_name"] == "stellarspeak-sample"
    for name, source in manifest["sources"].items():
        assert f"| {name} | {source['category']} | {source['license']} |" in body
    assert body == card_body(manifest)


SEEDED_CARD = """---
annotations_creators:
- expert-generated
license: mit
pretty_name: an old name
---

# Hand-written card

Notes by a maintainer.
"""


def test_a_republish_replaces_stale_shards_and_merges_the_card(
    hub: HubStub, corpus: sd.Corpus, rebuilt: sd.Corpus
) -> None:
    repo = "ns/republish"
    hub.commit(repo, {"README.md": SEEDED_CARD, "notes/provenance.txt": "kept"}, message="a maintainer's card")
    first = sd.publish(corpus.path, repo, sleep=no_sleep)
    before = len(hub.commits(repo))

    second = sd.publish(rebuilt.path, repo, sleep=no_sleep)

    commits = hub.commits(repo)
    assert len(commits) == before + 1 and commits[-1].sha == second.commit_oid  # exactly one new commit
    stale = sorted(set(shards(corpus)) - set(shards(rebuilt)))
    assert "data/train-00000-of-00001.parquet" in stale and len(shards(rebuilt)) > len(shards(corpus))
    assert second.deleted == tuple(stale)
    files = hub.files(repo)
    assert set(files) == {".gitattributes", "README.md", "notes/provenance.txt", *shards(rebuilt)}
    for path in shards(rebuilt):
        assert files[path] == (rebuilt.path / path).read_bytes()
    assert first.commit_oid != second.commit_oid

    meta, body = card(hub, repo)
    assert meta["annotations_creators"] == ["expert-generated"]  # theirs, kept
    ours = card_metadata(rebuilt.manifest, include_quarantine=False)
    assert {key: meta[key] for key in ours} == ours  # ours, updated (license, pretty_name, dataset_info...)
    assert set(meta) == {"annotations_creators", *ours}
    assert body == card_body(rebuilt.manifest) and "seed 7." in body  # the body is ours: only YAML is merged


def test_republishing_the_same_corpus_commits_nothing(hub: HubStub, corpus: sd.Corpus) -> None:
    first = sd.publish(corpus.path, "ns/same", sleep=no_sleep)
    uploads = hub.calls("lfs_upload")
    again = sd.publish(corpus.path, "ns/same", sleep=no_sleep)
    assert len(hub.commits("ns/same")) == 2 and again.commit_oid == first.commit_oid
    assert hub.calls("lfs_upload") == uploads  # stored content is not sent again
    assert first.committed and not again.committed and (again.added, again.deleted) == ((), ())
    assert hub.calls("commit") == 1  # nothing was even sent to the commit endpoint


def test_the_cli_says_when_there_was_nothing_to_publish(hub: HubStub, corpus: sd.Corpus) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["publish", str(corpus.path), "ns/nothing"])
    assert first.exit_code == 0 and "in one commit" in first.output, first.output
    again = runner.invoke(app, ["publish", str(corpus.path), "ns/nothing"])
    assert again.exit_code == 0, again.output
    assert again.output.strip().splitlines()[-1] == "nothing to publish: the Hub already has this corpus"
    assert "published" not in again.output and "commit:" not in again.output
    assert len(hub.commits("ns/nothing")) == 2


# -- retries and failures ----------------------------------------------------------------------------


def test_a_412_on_the_commit_is_retried_after_rereading_the_repo(hub: HubStub, corpus: sd.Corpus) -> None:
    slept: list[float] = []
    hub.fail("commit", 412)
    result = sd.publish(corpus.path, "ns/412", sleep=slept.append, retry=RetryPolicy(backoff_s=0.5))
    assert result.attempts == 2 and slept == [0.5]
    assert len(hub.commits("ns/412")) == 2 and hub.head("ns/412") == result.commit_oid
    assert hub.calls("commit") == 2 and hub.calls("repo_info") == 2  # re-read before the second try
    assert hub.calls("lfs_upload") == len(shards(corpus))  # the shards are not uploaded again


def test_a_concurrent_commit_is_replanned_on_and_kept(hub: HubStub, corpus: sd.Corpus) -> None:
    repo = "ns/race"
    hub.create(repo)
    other = {"README.md": SEEDED_CARD, "data/train-99999-of-99999.parquet": b"PAR1 someone else's shard"}
    hub.before("commit", lambda: hub.commit(repo, other, message="another writer"))

    result = sd.publish(corpus.path, repo, sleep=no_sleep)

    assert result.attempts == 2
    assert [c.summary for c in hub.commits(repo)] == [
        "initial commit",
        "another writer",
        "Publish stellarspeak-sample (stellar-data)",
    ]
    assert result.deleted == ("data/train-99999-of-99999.parquet",)  # planned from the new head
    assert set(hub.files(repo)) == {".gitattributes", "README.md", *shards(corpus)}
    assert card(hub, repo)[0]["annotations_creators"] == ["expert-generated"]


@pytest.mark.parametrize("endpoint", ["preupload", "lfs_upload", "commit", "tree"])
def test_a_transient_error_is_retried_once_per_failure(hub: HubStub, corpus: sd.Corpus, endpoint: str) -> None:
    # huggingface_hub's own retries are off during a publish: one failed request, one wait, one retry.
    slept: list[float] = []
    hub.fail(endpoint, 503)
    result = sd.publish(corpus.path, "ns/503", sleep=slept.append, retry=RetryPolicy(backoff_s=0.5))
    assert len(hub.commits("ns/503")) == 2 and hub.head("ns/503") == result.commit_oid
    assert slept == [0.5]
    assert [r.status for r in hub.requests if r.endpoint == endpoint][:2] == [503, 200]


@pytest.mark.parametrize("endpoint", ["preupload", "lfs_upload", "commit", "tree"])
def test_a_hub_that_always_answers_500_gets_a_bounded_number_of_requests(
    hub: HubStub, corpus: sd.Corpus, caplog: pytest.LogCaptureFixture, endpoint: str
) -> None:
    caplog.set_level(logging.INFO)
    hub.fail(endpoint, 500, times=10**6)
    slept: list[float] = []
    started = time.monotonic()
    with pytest.raises(sd.PublishError) as raised:
        sd.publish(corpus.path, "ns/down", sleep=slept.append)  # the default policy: 5 tries of a step
    assert time.monotonic() - started < 30  # a generous guard: the client's own sleeps would take minutes
    assert hub.calls(endpoint) == 5 and slept == [2.0, 4.0, 8.0, 16.0]
    lines = str(raised.value).splitlines()
    assert len(lines) == 2 and "HTTP 500 Internal Server Error: injected failure (gave up after 5 tries)" in lines[0]
    assert lines[1].startswith("the Hub is having trouble: publish again later")
    ours = [r for r in caplog.records if r.name == "stellar_data.publish"]
    assert len(ours) == 4 and all(r.getMessage().count("\n") == 0 for r in ours)  # one line per retry
    assert [r.getMessage() for r in caplog.records if r.name.startswith("huggingface_hub")] == []
    assert len(hub.commits("ns/down")) == 1  # only the initial commit


def test_the_retry_budget_is_shared_by_all_steps(hub: HubStub, corpus: sd.Corpus) -> None:
    hub.fail("preupload", 503, times=2)
    hub.fail("commit", 503, times=2)
    slept: list[float] = []
    policy = RetryPolicy(attempts=5, retries=3, backoff_s=1.0)
    with pytest.raises(sd.PublishError, match=r"commit to ns/budget: HTTP 503.*gave up after 2 tries"):
        sd.publish(corpus.path, "ns/budget", sleep=slept.append, retry=policy)
    assert slept == [1.0, 2.0, 1.0]  # two retries of an upload, one of the commit: the budget is spent
    assert hub.calls("commit") == 2


def test_the_total_wait_of_a_publish_is_bounded(hub: HubStub, corpus: sd.Corpus) -> None:
    hub.fail("commit", 503, times=10**6)
    slept: list[float] = []
    with pytest.raises(sd.PublishError, match="gave up after 3 tries"):
        sd.publish(corpus.path, "ns/wait", sleep=slept.append, retry=RetryPolicy(backoff_s=10.0, wait_s=35.0))
    assert slept == [10.0, 20.0] and hub.calls("commit") == 3  # a third wait (30 s, the cap) would pass wait_s


def test_retry_after_is_honoured_within_the_cap(hub: HubStub, corpus: sd.Corpus) -> None:
    hub.fail("commit", 429, headers={"Retry-After": "7"})
    hub.fail("preupload", 503, headers={"Retry-After": "3600"})
    slept: list[float] = []
    sd.publish(corpus.path, "ns/after", sleep=slept.append, retry=RetryPolicy(backoff_s=0.5, max_backoff_s=30.0))
    assert slept == [30.0, 7.0]


def test_huggingface_hub_retries_on_its_own_again_after_a_publish(hub: HubStub, corpus: sd.Corpus) -> None:
    from huggingface_hub import get_session

    sd.publish(corpus.path, "ns/after-publish", sleep=no_sleep)
    hub.fail("repo_info", 503)
    assert get_session().get(f"{hub.url}/api/datasets/ns/after-publish").status_code == 503  # an answer, not a raise


@pytest.mark.parametrize(
    ("endpoint", "status", "times"),
    [
        ("commit", 403, 1),
        ("preupload", 403, 1),
        ("create_repo", 403, 1),  # create_repo(exist_ok) then asks repo_info: 404, so the 403 stands
        ("commit", 503, 99),
        ("lfs_upload", 403, 1),  # huggingface_hub wraps LFS upload errors in a RuntimeError
    ],
)
def test_a_lasting_error_fails_with_publish_error_and_no_commit(
    hub: HubStub, corpus: sd.Corpus, endpoint: str, status: int, times: int
) -> None:
    hub.fail(endpoint, status, times=times)
    slept: list[float] = []
    with pytest.raises(sd.PublishError, match=f"HTTP {status} .*: injected failure") as raised:
        sd.publish(corpus.path, "ns/fails", sleep=slept.append, retry=RetryPolicy(attempts=3, backoff_s=1.0))
    message = str(raised.value)
    assert TOKEN not in message and len(message.splitlines()) == 2  # what failed; what to do
    assert message.endswith("; nothing was published")
    assert "ns/fails" not in hub.repos or len(hub.commits("ns/fails")) == 1  # at most the initial commit
    if status < 500:
        assert slept == [] and hub.calls(endpoint) == 1  # a 4xx is not retried
    else:
        assert slept == [1.0, 2.0] and hub.calls("commit") == 3


def test_an_unreachable_hub_fails_with_publish_error(hub: HubStub, corpus: sd.Corpus) -> None:
    hub.stop()
    try:
        with pytest.raises(sd.PublishError, match=r"create ns/down: no answer from 127\.0\.0\.1") as raised:
            sd.publish(corpus.path, "ns/down", sleep=no_sleep, retry=RetryPolicy(attempts=2))
        assert "(gave up after 2 tries)\ncheck the network, a proxy, or HF_ENDPOINT" in str(raised.value)
    finally:
        hub.start()  # a new port; the fixture's teardown only checks the stub's records


def test_offline_mode_is_one_error_with_what_to_do(corpus: sd.Corpus, loopback_only: list) -> None:
    # No stub: tests run with HF_HUB_OFFLINE=1 (tests/conftest.py), so nothing may leave the process.
    with pytest.raises(sd.PublishError) as raised:
        sd.publish(corpus.path, "ns/offline", sleep=no_sleep)
    assert str(raised.value).splitlines() == [
        "create ns/offline: offline mode is on",
        "unset HF_HUB_OFFLINE to publish; nothing was published",
    ]


def test_a_single_licence_republish_leaves_no_stale_license_name(
    hub: HubStub, corpus: sd.Corpus, tmp_path: Path
) -> None:
    recipe = sd.load_recipe(DEFAULT_RECIPE)
    apache = tuple(s for s in recipe.sources if s.license == "apache-2.0")
    single = sd.build(dataclasses.replace(recipe, sources=apache, mix=None), out=tmp_path / "apache", workers=1)
    sd.publish(corpus.path, "ns/licence", sleep=no_sleep)
    sd.publish(single.path, "ns/licence", sleep=no_sleep)
    meta, _ = card(hub, "ns/licence")
    assert meta["license"] == "apache-2.0"
    assert "license_name" not in meta


# -- branches and pull requests ----------------------------------------------------------------------


def test_publish_to_a_branch_leaves_main_alone(hub: HubStub, corpus: sd.Corpus) -> None:
    result = sd.publish(corpus.path, "ns/branch", revision="staging", sleep=no_sleep)
    assert [c.summary for c in hub.commits("ns/branch")] == ["initial commit"]
    assert hub.head("ns/branch", "staging") == result.commit_oid
    assert set(hub.files("ns/branch", "staging")) == {".gitattributes", "README.md", *shards(corpus)}
    assert hub.calls("create_branch") == 1


def test_publish_as_a_pull_request_leaves_main_alone(hub: HubStub, corpus: sd.Corpus) -> None:
    hub.create("ns/pr")
    result = sd.publish(corpus.path, "ns/pr", create_pr=True, sleep=no_sleep)
    assert [c.summary for c in hub.commits("ns/pr")] == ["initial commit"]
    assert hub.head("ns/pr", "refs/pr/1") == result.commit_oid
    assert set(hub.files("ns/pr", "refs/pr/1")) == {".gitattributes", "README.md", *shards(corpus)}


# -- reading it back ---------------------------------------------------------------------------------


def test_load_dataset_from_the_hub_returns_the_local_rows(hub: HubStub, rebuilt: sd.Corpus) -> None:
    sd.publish(rebuilt.path, "ns/load", sleep=no_sleep)
    manifest = rebuilt.manifest
    assert len(manifest["splits"]["train"]["shards"]) > 1  # the order of shards is checked too

    loaded = datasets.load_dataset("ns/load")
    assert set(loaded) == {"train", "validation"}
    for name in ("train", "validation"):
        assert loaded[name]["id"] == local_ids(rebuilt, manifest["splits"][name]["shards"])
        assert loaded[name].column_names == list(RECORD_SCHEMA.names)
    heldout = datasets.load_dataset("ns/load", HELDOUT)
    assert heldout["test"]["id"] == local_ids(rebuilt, manifest["tables"][HELDOUT]["shards"])
    reads = [r for r in hub.requests if r.endpoint in ("repo_info", "tree", "resolve")]
    assert hub.calls("resolve") > 0 and {r.authorization for r in reads} == {f"Bearer {TOKEN}"}


# -- the token ---------------------------------------------------------------------------------------


def test_the_cli_never_shows_the_token(
    hub: HubStub,
    corpus: sd.Corpus,
    rebuilt: sd.Corpus,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    ok = runner.invoke(app, ["publish", str(corpus.path), "ns/cli", "--private"])
    assert ok.exit_code == 0, ok.output
    assert f"deleted 0 stale ones in one commit: {hub.url}/datasets/ns/cli/commit/{hub.head('ns/cli')}" in ok.output
    assert hub.repos["ns/cli"].private

    hub.fail("commit", 403)
    failed = runner.invoke(app, ["publish", str(rebuilt.path), "ns/cli"])  # a change, so a commit
    assert failed.exit_code == 2 and "error: commit to ns/cli" in failed.output
    assert len(hub.commits("ns/cli")) == 2

    # The token went to the Hub (every API call but the LFS PUT, a pre-signed URL on the Hub) ...
    assert {r.authorization for r in hub.requests if r.endpoint != "lfs_upload"} == {f"Bearer {TOKEN}"}
    # ... and nowhere else: not printed, not logged, not in the README or the commit messages.
    captured = capfd.readouterr()
    for text in (ok.output, failed.output, caplog.text, captured.out, captured.err, *hub.validated_yaml):
        assert TOKEN not in text
    for commit in hub.commits("ns/cli"):
        assert TOKEN not in commit.summary + commit.description
        assert all(TOKEN.encode() not in content for content in (f.content for f in commit.files.values()))


@pytest.mark.parametrize("repo_id", ["not a repo", "a/b/c", "../x", ""])
def test_a_bad_repo_id_for_a_real_corpus_is_one_error_line_and_no_request(
    hub: HubStub, corpus: sd.Corpus, repo_id: str
) -> None:
    result = CliRunner().invoke(app, ["publish", str(corpus.path), repo_id])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: invalid repository id {repo_id!r}: expected NAME or NAMESPACE/NAME, e.g. user/stellarspeak "
        "(letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters each)"
    ]
    assert hub.requests == []


def test_the_cli_fails_on_a_hub_that_always_answers_500_with_one_error(
    hub: HubStub, corpus: sd.Corpus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hub.fail("preupload", 500, times=10**6)
    failed = CliRunner().invoke(app, ["publish", str(corpus.path), "ns/cli500", "--backoff", "0"])
    assert failed.exit_code == 2, failed.output
    assert "Traceback" not in failed.output and failed.output.count("error:") == 1
    error, hint = failed.output.strip().splitlines()[-2:]
    assert error.startswith("error: upload ") and error.endswith(
        "HTTP 500 Internal Server Error: injected failure (gave up after 5 tries)"
    )
    assert hint == "the Hub is having trouble: publish again later; nothing was published"
    assert hub.calls("preupload") == 5
    assert len([r for r in caplog.records if r.name == "stellar_data.publish"]) == 4


@pytest.mark.parametrize(("endpoint", "status", "times"), [("commit", 403, 1), ("preupload", 503, 10**6)])
def test_a_token_the_server_echoes_is_redacted(
    hub: HubStub,
    corpus: sd.Corpus,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
    endpoint: str,
    status: int,
    times: int,
) -> None:
    caplog.set_level(logging.INFO)  # (httpcore2's DEBUG traces show raw response headers, token and all)
    hub.fail(endpoint, status, times=times, message="bad token <token>, see https://hub.example/t?token=<token>")
    failed = CliRunner().invoke(app, ["publish", str(corpus.path), "ns/echo", "--backoff", "0"])
    assert failed.exit_code == 2, failed.output
    assert "bad token hf_***, see https://hub.example/t?token=hf_***" in failed.output
    captured = capfd.readouterr()
    for text in (failed.output, caplog.text, captured.out, captured.err):
        assert TOKEN not in text and TOKEN[:10] not in text


# -- fetching sources from the Hub -------------------------------------------------------------------


def hub_spec(path: str, sha256: str, revision: str, filename: str = "raw/train.parquet") -> FetchSpec:
    hub = {"repo_id": "ns/upstream", "filename": filename, "revision": revision, "repo_type": "dataset"}
    return FetchSpec(path, sha256, hub=hub)


def test_fetch_file_downloads_a_pinned_hub_revision(hub: HubStub, tmp_path: Path) -> None:
    pinned_bytes = b"PAR1 version one \x00\xff"
    pinned = hub.commit("ns/upstream", {"raw/train.parquet": pinned_bytes}, message="v1")
    hub.commit("ns/upstream", {"raw/train.parquet": b"PAR1 version two"}, message="v2")  # main moved on
    spec = hub_spec("upstream/train.parquet", hashlib.sha256(pinned_bytes).hexdigest(), pinned)

    fetched = fetch_file(spec, tmp_path / "sources")

    assert (fetched.path, fetched.action, fetched.bytes) == ("upstream/train.parquet", "downloaded", len(pinned_bytes))
    assert (tmp_path / "sources" / "upstream" / "train.parquet").read_bytes() == pinned_bytes
    assert any(r.path.startswith(f"/datasets/ns/upstream/resolve/{pinned}/") for r in hub.requests)
    calls = len(hub.requests)
    assert fetch_file(spec, tmp_path / "sources").action == "kept" and len(hub.requests) == calls


def test_fetch_file_refuses_a_hub_file_with_another_hash(hub: HubStub, tmp_path: Path) -> None:
    content = b'{"question": "q", "answer": "a"}\n'
    revision = hub.commit("ns/upstream", {"raw/train.jsonl": content})
    wrong = "0" * 64
    spec = hub_spec("upstream/train.jsonl", wrong, revision, filename="raw/train.jsonl")
    with pytest.raises(sd.SourceFileError) as raised:
        fetch_file(spec, tmp_path / "sources")
    message = str(raised.value)
    assert wrong in message and hashlib.sha256(content).hexdigest() in message
    assert list((tmp_path / "sources" / "upstream").iterdir()) == []  # neither the file nor a .part


# -- the real Hub, on request only ---------------------------------------------------------------------

LIVE_REPO = os.environ.get("STELLAR_LIVE_HUB_REPO", "")
LIVE = (
    os.environ.get("STELLAR_LIVE_HUB") == "1"
    and bool(os.environ.get("HF_TOKEN"))
    and bool(LIVE_REPO)
    and not os.environ.get("CI")
)


@pytest.mark.skipif(
    not LIVE, reason="live Hub: set HF_TOKEN, STELLAR_LIVE_HUB=1 and STELLAR_LIVE_HUB_REPO (never in CI)"
)
def test_live_hub_smoke(corpus: sd.Corpus, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Publish the sample corpus to a private repository on the real Hub and load it back."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "USE_PARQUET_EXPORT"):
        monkeypatch.setattr(datasets.config, name, False)

    result = sd.publish(corpus.path, LIVE_REPO, private=True, retry=RetryPolicy(backoff_s=5.0))

    loaded = datasets.load_dataset(LIVE_REPO, revision=result.commit_oid, cache_dir=str(tmp_path))
    splits = corpus.manifest["splits"]
    assert {name: len(split) for name, split in loaded.items()} == {n: s["records"] for n, s in splits.items()}
