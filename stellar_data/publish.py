"""Publish a built corpus to the Hugging Face Hub: one atomic commit per publish.

1. Create the dataset repository when missing (and the branch, for `revision`).
2. Pre-upload every shard, one at a time (at most one shard's bytes in memory; already stored
   content is not sent again).
3. Plan the commit from the repository as it is now: add the shards and the card, delete stale
   shards (files under the published config folders that this build does not have), merge the
   card's YAML into the repository's existing YAML; commit with `parent_commit` = the head read.
   When the repository already holds exactly this corpus, no commit is made (`committed` is False).
4. On 409 / 412 (someone else committed) re-read the repository and re-plan; on 408 / 429 / 5xx or a
   failed connection back off and retry, within one RetryPolicy for the whole publish (see
   publish_retry.py). Nothing is half-published: the commit is all or nothing.

The repository id is checked before anything is read or sent; every failure to talk to the Hub is a
PublishError of one or two lines (publish_errors.py), with tokens redacted.

The token comes from HF_TOKEN or the login (huggingface_hub's own lookup) and is never printed or
stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .corpus import Corpus, load
from .publish_errors import PublishError, RepoIdError, validate_repo_id
from .publish_retry import Retrier, RetryPolicy, fail_fast_hub_client
from .writers.card import TABLE_SCHEMAS, card_body, card_metadata, merge_metadata, render, split_card

__all__ = ["PublishError", "PublishResult", "RepoIdError", "RetryPolicy", "publish", "published_files"]

CARD = "README.md"
DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class PublishResult:
    repo_id: str
    commit_oid: str
    """The new commit; when nothing was committed, the head that already had this corpus."""
    commit_url: str
    added: tuple[str, ...]
    deleted: tuple[str, ...]
    attempts: int
    """Tries of the commit step (1 unless a conflict or a transient failure made it re-plan)."""
    committed: bool = True
    """False when the repository already held exactly this corpus (added and deleted are then empty)."""


@dataclass(frozen=True)
class _Target:
    api: Any  # huggingface_hub.HfApi, imported lazily
    repo_id: str
    revision: str | None
    create_pr: bool


@dataclass(frozen=True)
class _Plan:
    parent: str
    operations: list
    added: tuple[str, ...]
    deleted: tuple[str, ...]
    changed: bool
    """False when every file is already on the Hub as planned and nothing is stale."""


def published_files(corpus: Corpus) -> list[tuple[str, Path]]:
    """(path in the repository, local file) for every shard of every published config."""
    shards = [s for split in corpus.manifest["splits"].values() for s in split["shards"]]
    shards += [s for table in corpus.manifest["tables"].values() for s in table["shards"]]
    return [(shard, corpus.path / shard) for shard in sorted(shards)]


def published_folders() -> tuple[str, ...]:
    """Every folder a publish manages: a config this build no longer has loses its old shards too."""
    return ("data/", *(f"{name}/" for name in TABLE_SCHEMAS))


def _remote_card(target: _Target, sha: str, remote: dict) -> str | None:
    if CARD not in remote:
        return None
    path = target.api.hf_hub_download(target.repo_id, CARD, repo_type="dataset", revision=sha)
    return Path(path).read_text(encoding="utf-8")


def _stored(operation: Any, remote: dict) -> bool:
    """The Hub already has this shard at this path (as an LFS file with the same sha256)."""
    entry = remote.get(operation.path_in_repo)
    lfs = getattr(entry, "lfs", None)
    return lfs is not None and lfs.sha256 == operation.upload_info.sha256.hex()


def _plan(target: _Target, corpus: Corpus, additions: list) -> _Plan:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, RepoFile

    api, repo_id = target.api, target.repo_id
    sha = api.repo_info(repo_id, repo_type="dataset", revision=target.revision).sha
    tree = api.list_repo_tree(repo_id, repo_type="dataset", revision=sha, recursive=True)
    remote = {entry.path: entry for entry in tree if isinstance(entry, RepoFile)}
    old_card = _remote_card(target, sha, remote)
    existing = split_card(old_card)[0] if old_card is not None else {}
    metadata = merge_metadata(existing, card_metadata(corpus.manifest, include_quarantine=False))
    new_card = render(metadata, card_body(corpus.manifest))
    card = CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=new_card.encode())
    ours = {op.path_in_repo for op in additions}
    stale = sorted(path for path in remote if path.startswith(published_folders()) and path not in ours)
    changed = bool(stale) or new_card != old_card or not all(_stored(op, remote) for op in additions)
    operations = [*additions, card, *(CommitOperationDelete(path_in_repo=path) for path in stale)]
    return _Plan(sha, operations, (*sorted(ours), CARD), tuple(stale), changed)


def _ensure_repo(target: _Target, retrier: Retrier, private: bool) -> None:
    api, repo_id = target.api, target.repo_id
    retrier.run(
        f"create {repo_id}", lambda _: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    )
    if target.revision is not None and not target.create_pr:
        retrier.run(
            f"create branch {target.revision} of {repo_id}",
            lambda _: api.create_branch(repo_id, branch=target.revision, repo_type="dataset", exist_ok=True),
        )


def _upload(
    target: _Target, retrier: Retrier, corpus: Corpus, progress: Callable[[str, int, int], None] | None
) -> list:
    """Pre-upload every shard, one at a time; the operations for the commit."""
    from huggingface_hub import CommitOperationAdd

    files = published_files(corpus)
    additions = []
    for done, (path_in_repo, local) in enumerate(files, start=1):
        operation = CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(local))
        retrier.run(
            f"upload {path_in_repo}",
            lambda _, op=operation: target.api.preupload_lfs_files(
                target.repo_id, [op], repo_type="dataset", revision=target.revision, create_pr=target.create_pr,
                num_threads=1,
            ),
        )  # fmt: skip
        additions.append(operation)
        if progress:
            progress("upload", done, len(files))
    return additions


def _commit(target: _Target, corpus: Corpus, additions: list, attempt: int) -> PublishResult:
    """Plan from the repository as it is now, and commit the plan (or nothing, when nothing changed)."""
    api, repo_id = target.api, target.repo_id
    plan = _plan(target, corpus, additions)
    if not plan.changed:
        url = f"{api.endpoint}/datasets/{repo_id}/commit/{plan.parent}"
        return PublishResult(repo_id, plan.parent, url, (), (), attempt, committed=False)
    manifest = corpus.manifest
    commit = api.create_commit(
        repo_id,
        plan.operations,
        commit_message=f"Publish {manifest['corpus']} (stellar-data)",
        commit_description=f"recipe sha256 {manifest['recipe']['sha256']}, seed {manifest['seed']}",
        repo_type="dataset",
        revision=target.revision,
        create_pr=target.create_pr,
        parent_commit=plan.parent,
    )
    if commit.oid == plan.parent:  # huggingface_hub found nothing to commit after all
        return PublishResult(repo_id, commit.oid, commit.commit_url, (), (), attempt, committed=False)
    return PublishResult(repo_id, commit.oid, commit.commit_url, plan.added, plan.deleted, attempt)


def publish(
    corpus_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str, int, int], None] | None = None,
) -> PublishResult:
    """Publish a built corpus folder to the dataset repository `repo_id` in one commit.

    Raises RepoIdError for a malformed `repo_id` (before anything is read or sent), CorpusDirError for
    a folder that is not a built corpus, PublishError when the Hub cannot be talked into it."""
    from huggingface_hub import HfApi

    validate_repo_id(repo_id)
    corpus = load(corpus_dir)
    target = _Target(HfApi(token=token, endpoint=endpoint), repo_id, revision, create_pr)
    retrier = Retrier(retry, sleep, repo_id, target.api.endpoint)
    with fail_fast_hub_client():
        _ensure_repo(target, retrier, private)
        additions = _upload(target, retrier, corpus, progress)
        return retrier.run(
            f"commit to {repo_id}", lambda attempt: _commit(target, corpus, additions, attempt), replan=True
        )
