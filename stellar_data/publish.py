"""Publish a built corpus to the Hugging Face Hub: one atomic commit per publish.

1. Create the dataset repository when missing (and the branch, for `revision`).
2. Pre-upload every shard, one at a time (at most one shard's bytes in memory; already stored
   content is not sent again).
3. Plan the commit from the repository as it is now: add the shards and the card, delete stale
   shards (files under the published config folders that this build does not have), merge the
   card's YAML into the repository's existing YAML; commit with `parent_commit` = the head read.
4. On 409 / 412 (someone else committed) re-read the repository and re-plan; on 429 / 5xx back off
   and retry; bounded attempts. Nothing is half-published: the commit is all or nothing.

The token comes from HF_TOKEN or the login (huggingface_hub's own lookup) and is never printed or
stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .corpus import Corpus, load
from .errors import StellarDataError
from .writers.card import TABLE_SCHEMAS, card_body, card_metadata, merge_metadata, render, split_card

CARD = "README.md"
RETRY_REPLAN = (409, 412)
RETRY_LATER = (429, 500, 502, 503, 504)


class PublishError(StellarDataError):
    """Publishing failed; the repository keeps its previous commit."""


@dataclass(frozen=True)
class PublishResult:
    repo_id: str
    commit_oid: str
    commit_url: str
    added: tuple[str, ...]
    deleted: tuple[str, ...]
    attempts: int


@dataclass(frozen=True)
class _Plan:
    parent: str | None
    operations: list
    added: tuple[str, ...]
    deleted: tuple[str, ...]


def _status(exc: BaseException) -> int | None:
    """The HTTP status of an error, or of the error it wraps (LFS upload errors are RuntimeErrors
    around the HTTP error); 503 for a connection that failed (worth retrying)."""
    for error in (exc, exc.__cause__):
        response = getattr(error, "response", None)
        if getattr(response, "status_code", None) is not None:
            return response.status_code
    if _is_transport_error(exc) or (exc.__cause__ is not None and _is_transport_error(exc.__cause__)):
        return 503
    return None


def _is_transport_error(exc: BaseException) -> bool:
    """A failed connection (huggingface_hub's HTTP client raises its own transport errors)."""
    return isinstance(exc, ConnectionError | TimeoutError) or type(exc).__name__ in {
        "ConnectError", "ConnectTimeout", "ReadTimeout", "ReadError", "WriteError", "RemoteProtocolError",
    }  # fmt: skip


def _describe(exc: BaseException) -> str:
    """The error's message, and the one it wraps (the HTTP status of an LFS upload error)."""
    return f"{exc} ({exc.__cause__})" if exc.__cause__ is not None else str(exc)


def _is_hub_error(exc: BaseException) -> bool:
    """What huggingface_hub raises for a failed request: HTTP errors (OSErrors), LFS upload errors
    (RuntimeErrors wrapping them) and its HTTP client's transport errors. Anything else is a bug."""
    return not isinstance(exc, StellarDataError) and (
        isinstance(exc, OSError | RuntimeError) or _is_transport_error(exc)
    )


def published_files(corpus: Corpus) -> list[tuple[str, Path]]:
    """(path in the repository, local file) for every shard of every published config."""
    shards = [s for split in corpus.manifest["splits"].values() for s in split["shards"]]
    shards += [s for table in corpus.manifest["tables"].values() for s in table["shards"]]
    return [(shard, corpus.path / shard) for shard in sorted(shards)]


def published_folders() -> tuple[str, ...]:
    """Every folder a publish manages: a config this build no longer has loses its old shards too."""
    return ("data/", *(f"{name}/" for name in TABLE_SCHEMAS))


def _retrying(
    call: Callable[[], object], what: str, attempts: int, backoff_s: float, sleep: Callable[[float], None]
) -> object:
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not _is_hub_error(exc):
                raise
            if _status(exc) not in RETRY_LATER or attempt == attempts:
                raise PublishError(f"{what}: {_describe(exc)}") from None
            sleep(backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _plan(api, repo_id: str, revision: str | None, corpus: Corpus, additions: list) -> _Plan:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    info = api.repo_info(repo_id, repo_type="dataset", revision=revision)
    remote = api.list_repo_files(repo_id, repo_type="dataset", revision=info.sha)
    existing = {}
    if CARD in remote:
        card_path = api.hf_hub_download(repo_id, CARD, repo_type="dataset", revision=info.sha)
        existing, _ = split_card(Path(card_path).read_text(encoding="utf-8"))
    metadata = merge_metadata(existing, card_metadata(corpus.manifest, include_quarantine=False))
    card = CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=render(metadata, card_body(corpus.manifest)).encode())
    ours = {op.path_in_repo for op in additions}
    folders = published_folders()
    stale = sorted(path for path in remote if path.startswith(folders) and path not in ours)
    operations = [*additions, card, *(CommitOperationDelete(path_in_repo=path) for path in stale)]
    return _Plan(info.sha, operations, (*sorted(ours), CARD), tuple(stale))


def publish(
    corpus_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    attempts: int = 5,
    backoff_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str, int, int], None] | None = None,
) -> PublishResult:
    """Publish a built corpus folder to the dataset repository `repo_id` in one commit."""
    from huggingface_hub import CommitOperationAdd, HfApi

    corpus = load(corpus_dir)
    api = HfApi(token=token, endpoint=endpoint)

    def retry(call: Callable[[], object], what: str) -> object:
        return _retrying(call, what, attempts, backoff_s, sleep)

    retry(lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True), f"create {repo_id}")
    if revision is not None and not create_pr:
        retry(
            lambda: api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True),
            f"branch {revision}",
        )
    files = published_files(corpus)
    additions = []
    for done, (path_in_repo, local) in enumerate(files, start=1):
        operation = CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(local))
        retry(
            lambda op=operation: api.preupload_lfs_files(
                repo_id, [op], repo_type="dataset", revision=revision, create_pr=create_pr, num_threads=1
            ),
            f"upload {path_in_repo}",
        )
        additions.append(operation)
        if progress:
            progress("upload", done, len(files))
    manifest = corpus.manifest
    for attempt in range(1, attempts + 1):
        plan = retry(lambda: _plan(api, repo_id, revision, corpus, additions), f"read {repo_id}")
        try:
            commit = api.create_commit(
                repo_id,
                plan.operations,
                commit_message=f"Publish {corpus.manifest['corpus']} (stellar-data)",
                commit_description=f"recipe sha256 {manifest['recipe']['sha256']}, seed {manifest['seed']}",
                repo_type="dataset",
                revision=revision,
                create_pr=create_pr,
                parent_commit=plan.parent,
            )
        except Exception as exc:
            if not _is_hub_error(exc):
                raise
            status = _status(exc)
            if status in RETRY_REPLAN + RETRY_LATER and attempt < attempts:
                sleep(backoff_s * 2 ** (attempt - 1))
                continue  # re-read the repository and re-plan
            raise PublishError(f"commit to {repo_id}: {_describe(exc)}") from None
        return PublishResult(repo_id, commit.oid, commit.commit_url, plan.added, plan.deleted, attempt)
    raise PublishError(f"commit to {repo_id}: gave up after {attempts} attempts")
