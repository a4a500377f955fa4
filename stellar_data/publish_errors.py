"""What a failed publish tells its user: one or two lines, never a traceback, never a token.

- `validate_repo_id` refuses a malformed repository id before anything is read or sent.
- `hub_failure` turns what huggingface_hub (or the fail-fast client of publish_retry.py) raised into a
  `HubFailure`: the HTTP status, the server's short message, and whether trying again can help.
- `failure_message` writes it for a person: line 1 says what failed (status, server message, tries),
  line 2 what to do.
- `redact` hides anything shaped like a Hugging Face token in text that came from a server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus

from .errors import StellarDataError

TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{6,}")
RETRY_LATER = (408, 429, 500, 502, 503, 504)
"""Statuses worth trying again after a wait (what huggingface_hub itself retries)."""
RETRY_REPLAN = (409, 412)
"""A commit conflict: someone else committed; re-read the repository and plan again."""
MESSAGE_CHARS = 200
_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")


class PublishError(StellarDataError):
    """Publishing failed; the repository keeps its previous commit."""


class RepoIdError(PublishError):
    """The repository id is not NAME or NAMESPACE/NAME."""


class HubAnswered(Exception):
    """The Hub answered with a status worth retrying (raised by the fail-fast client, so that
    huggingface_hub does not retry it itself)."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.retry_after_s = status, message, retry_after_s


class HubUnreachable(Exception):
    """No answer: the connection failed or timed out (raised by the fail-fast client)."""


@dataclass(frozen=True)
class HubFailure:
    message: str
    """One line, at most MESSAGE_CHARS, tokens redacted."""
    status: int | None = None
    """The HTTP status; None when nothing answered or nothing was sent."""
    transient: bool = False
    """A wait may cure it (429, 5xx, a failed connection)."""
    retry_after_s: float | None = None
    hint: str = ""
    """What to do, when the status alone does not say it."""


def redact(text: str) -> str:
    """`text` with every token-like `hf_...` replaced by `hf_***`."""
    return TOKEN_PATTERN.sub("hf_***", text)


def short(text: str) -> str:
    """The first non-empty line of `text`, redacted and cut to MESSAGE_CHARS."""
    line = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    line = redact(line)
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 3] + "..."


def validate_repo_id(repo_id: str) -> None:
    """The Hub's rules: NAME or NAMESPACE/NAME, each of letters, digits, '-', '_', '.', not starting
    or ending with '-' or '.', no '--' or '..', at most 96 characters, the name not ending in '.git'."""
    parts = repo_id.split("/")
    valid = (
        len(parts) <= 2
        and all(_REPO_PART.fullmatch(part) and "--" not in part and ".." not in part for part in parts)
        and not repo_id.endswith(".git")
    )
    if not valid:
        raise RepoIdError(
            f"invalid repository id {redact(repo_id)!r}: expected NAME or NAMESPACE/NAME, e.g. user/stellarspeak "
            "(letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters each)"
        )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then the errors it was raised from (huggingface_hub wraps LFS upload errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def hub_failure(exc: BaseException) -> HubFailure | None:
    """What went wrong talking to the Hub, or None for anything else (a bug: let it be seen)."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    errors = list(_chain(exc))
    for error in errors:
        if isinstance(error, HubAnswered):
            return HubFailure(short(error.message), error.status, True, error.retry_after_s)
        if isinstance(error, HubUnreachable):
            return HubFailure(short(str(error)), None, True)
        if isinstance(error, OfflineModeIsEnabled):
            return HubFailure("offline mode is on", hint="unset HF_HUB_OFFLINE to publish")
        if isinstance(error, HfHubHTTPError):
            status = error.response.status_code if error.response is not None else None
            return HubFailure(short(error.server_message or str(error)), status, status in RETRY_LATER)
        if isinstance(error, HFValidationError):
            return HubFailure(short(str(error)))
    local = next((e for e in errors if isinstance(e, OSError)), None)  # e.g. a shard unreadable mid-upload
    return HubFailure(short(f"{type(local).__name__}: {local}")) if local is not None else None


def _hint(failure: HubFailure, repo_id: str, endpoint: str) -> str:
    if failure.hint:
        return failure.hint
    if failure.status is None and failure.transient:
        return f"check the network, a proxy, or HF_ENDPOINT ({endpoint}), then publish again"
    if failure.status is None:
        return ""
    hints = {
        401: "check the token: set HF_TOKEN or run `hf auth login`",
        403: f"the token may not write to {repo_id}: use a token with write access to that namespace",
        404: "check the repository id and --revision",
        409: f"others kept committing to {repo_id}: publish again",
        412: f"others kept committing to {repo_id}: publish again",
        429: "the Hub is rate-limiting this token: wait a few minutes, then publish again",
    }
    if failure.status in hints:
        return hints[failure.status]
    return "the Hub is having trouble: publish again later" if failure.status >= 500 or failure.transient else ""


def failure_cause(failure: HubFailure) -> str:
    """`HTTP 503 Service Unavailable: <the server's message>`, or what happened instead."""
    if failure.status is None:
        return failure.message
    try:
        phrase = HTTPStatus(failure.status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP {failure.status} {phrase}".rstrip() + (f": {failure.message}" if failure.message else "")


def failure_message(what: str, failure: HubFailure, tries: int, repo_id: str, endpoint: str) -> str:
    """Line 1: what failed, the status and the server's message (and the tries); line 2: what to do."""
    tried = f" (gave up after {tries} tries)" if tries > 1 else ""
    hint = _hint(failure, repo_id, endpoint)
    advice = f"\n{hint}; nothing was published" if hint else ""
    return redact(f"{what}: {failure_cause(failure)}{tried}{advice}")
