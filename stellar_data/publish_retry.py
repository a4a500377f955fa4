"""Retries of a publish, bounded for the whole publish.

huggingface_hub retries some requests itself (`http_backoff`: up to 6 tries and 23 s of sleep for
each preupload, LFS upload, listing or download), which multiplied the retries of publish: a Hub
answering 500 cost 30 requests and minutes. So during a publish huggingface_hub's HTTP client is one
whose requests never come back with a retryable status or a network error (`fail_fast_hub_client`,
installed through the public `huggingface_hub.set_client_factory`): those raise at once, and
`Retrier` alone decides, under one `RetryPolicy`:

- a step (one request, or the commit with its plan) is tried at most `attempts` times;
- a publish retries at most `retries` times, all steps together;
- a publish waits at most `wait_s` seconds between tries, all steps together (backoff doubles from
  `backoff_s`, capped at `max_backoff_s`; a server's Retry-After is honoured within the cap);
- each retry logs one line.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import httpx2

from .publish_errors import (
    RETRY_LATER,
    RETRY_REPLAN,
    HubAnswered,
    HubFailure,
    HubUnreachable,
    PublishError,
    failure_cause,
    failure_message,
    hub_failure,
    short,
)

T = TypeVar("T")
logger = logging.getLogger("stellar_data.publish")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    """Tries of one step (a request; the commit with its plan)."""
    retries: int = 10
    """Retries in the whole publish, all steps together."""
    backoff_s: float = 2.0
    """The wait before a step's first retry; doubled for each further retry of that step."""
    max_backoff_s: float = 30.0
    """No single wait is longer (a Retry-After included)."""
    wait_s: float = 120.0
    """Waiting in the whole publish: a retry that would wait past it is not made."""

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.retries < 0:
            raise ValueError(f"RetryPolicy: attempts >= 1 and retries >= 0, not {self.attempts}, {self.retries}")
        if min(self.backoff_s, self.max_backoff_s, self.wait_s) < 0:
            raise ValueError("RetryPolicy: waits cannot be negative")

    def backoff(self, attempt: int, retry_after_s: float | None = None) -> float:
        """The wait after failed try number `attempt` (1-based)."""
        wait = self.backoff_s * 2 ** (attempt - 1)
        return min(max(wait, retry_after_s or 0.0), self.max_backoff_s)


class Retrier:
    """Runs the steps of one publish under one RetryPolicy; counts what the publish has used."""

    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], None], repo_id: str, endpoint: str) -> None:
        self._policy, self._sleep = policy, sleep
        self._repo_id, self._endpoint = repo_id, endpoint
        self.retried = 0
        self.waited_s = 0.0

    def run(self, what: str, step: Callable[[int], T], *, replan: bool = False) -> T:
        """`step(attempt)`, tried again after a transient Hub failure (and after a commit conflict when
        `replan`); any other Hub failure, or the last one, raises PublishError. Other errors are bugs
        and propagate unchanged."""
        for attempt in itertools.count(1):
            try:
                return step(attempt)
            except Exception as exc:
                failure = hub_failure(exc)
                if failure is None:
                    raise
            wait = self._wait(attempt, failure, replan)
            if wait is None:
                raise PublishError(failure_message(what, failure, attempt, self._repo_id, self._endpoint))
            logger.warning(
                "%s: %s; retry %d of at most %d in %.1f s",
                what, failure_cause(failure), attempt, self._policy.attempts - 1, wait,
            )  # fmt: skip
            self.retried += 1
            self.waited_s += wait
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, failure: HubFailure, replan: bool) -> float | None:
        """How long to wait before trying again, or None: do not try again."""
        retryable = failure.transient or (replan and failure.status in RETRY_REPLAN)
        if not retryable or attempt >= self._policy.attempts or self.retried >= self._policy.retries:
            return None
        wait = self._policy.backoff(attempt, failure.retry_after_s)
        return wait if self.waited_s + wait <= self._policy.wait_s else None


# -- huggingface_hub's HTTP client during a publish ----------------------------------------------------


def _server_message(response: httpx2.Response) -> str:
    """The Hub's short error message: X-Error-Message, else the JSON "error", else the body's start."""
    header = response.headers.get("X-Error-Message")
    if header:
        return short(header)
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        error = None
    return short(error if isinstance(error, str) else response.content.decode("utf-8", "replace"))


def _retry_after_s(response: httpx2.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


class FailFastTransport(httpx2.BaseTransport):
    """Sends each request once through huggingface_hub's default client (its request hook, proxies
    from the environment); a retryable answer or a network error raises HubAnswered / HubUnreachable,
    which huggingface_hub's http_backoff does not retry."""

    def __init__(self) -> None:
        from huggingface_hub.utils._http import default_client_factory

        self._client = default_client_factory()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = self._client.send(request, stream=True, follow_redirects=False)
        except httpx2.TransportError as exc:
            raise HubUnreachable(f"no answer from {request.url.host}: {exc or type(exc).__name__}") from None
        if response.status_code not in RETRY_LATER:
            return response
        try:
            response.read()
            raise HubAnswered(response.status_code, _server_message(response), _retry_after_s(response))
        finally:
            response.close()

    def close(self) -> None:
        self._client.close()


def _fail_fast_client() -> httpx2.Client:
    return httpx2.Client(transport=FailFastTransport(), follow_redirects=True, timeout=None)


@contextmanager
def fail_fast_hub_client() -> Iterator[None]:
    """huggingface_hub's client fails fast inside the block; its default client is back after it.

    The client is process-wide: other threads' huggingface_hub calls during a publish fail fast too,
    and a client factory set by the application is replaced by huggingface_hub's default afterwards."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    set_client_factory(_fail_fast_client)
    try:
        yield
    finally:
        set_client_factory(default_client_factory)
