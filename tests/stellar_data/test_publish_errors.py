"""What a failed publish says, and how it retries, without a Hub: repository ids checked up front,
tokens redacted, one or two lines per failure, and the retry budget of one publish."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import stellar_data as sd
from stellar_data.cli import app
from stellar_data.publish import RepoIdError, RetryPolicy
from stellar_data.publish_errors import HubAnswered, HubUnreachable, redact, validate_repo_id
from stellar_data.publish_retry import Retrier

BAD_IDS = [
    "not a repo",
    "a/b/c",
    "../x",
    "",
    "/name",
    "ns/",
    "ns/-x",
    "ns/x.",
    "ns/a--b",
    "ns/a..b",
    "ns/x.git",
    "x" * 97,
]


@pytest.mark.parametrize("repo_id", BAD_IDS)
def test_a_bad_repo_id_is_one_error_line_before_anything_is_read(tmp_path: Path, repo_id: str) -> None:
    missing = tmp_path / "no-corpus-here"  # the id is checked first: no CorpusDirError, no request
    with pytest.raises(RepoIdError):
        sd.publish(missing, repo_id)
    result = CliRunner().invoke(app, ["publish", str(missing), repo_id])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: invalid repository id {repo_id!r}: expected NAME or")


@pytest.mark.parametrize("repo_id", ["stellarspeak", "user/stellarspeak", "Org_1/data.set-2", "a/b", "x" * 96])
def test_a_good_repo_id_passes(repo_id: str) -> None:
    validate_repo_id(repo_id)


def test_a_token_pasted_as_the_repo_id_is_not_echoed() -> None:
    with pytest.raises(RepoIdError) as raised:
        validate_repo_id("hf_abcdefGHIJKL123456/x y")
    assert "hf_abcdef" not in str(raised.value) and "'hf_***/x y'" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token hf_abcdef in a body", "token hf_*** in a body"),
        ("https://x/?t=hf_ABC123xyz&u=hf_Q1w2E3r4", "https://x/?t=hf_***&u=hf_***"),
        ("hf_short stays", "hf_short stays"),  # 5 characters after hf_: not a token
        ("hf_abc12 too", "hf_abc12 too"),
        ("shf_abcdef", "shf_***"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


# -- the retry budget ----------------------------------------------------------------------------------


class Flaky:
    """A step that raises `errors` in turn, then returns "done"; counts its tries."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.tries = list(errors), 0

    def __call__(self, attempt: int) -> str:
        self.tries += 1
        assert attempt == self.tries
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def retrier(slept: list[float], **policy: float) -> Retrier:
    return Retrier(RetryPolicy(**policy), slept.append, "ns/x", "https://hub.test")  # type: ignore[arg-type]


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(backoff_s=2.0, max_backoff_s=10.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
    assert policy.backoff(1, retry_after_s=7.0) == 7.0 and policy.backoff(1, retry_after_s=99.0) == 10.0


def test_a_step_is_tried_at_most_attempts_times() -> None:
    slept: list[float] = []
    step = Flaky(*[HubAnswered(502, "bad gateway")] * 9)
    with pytest.raises(sd.PublishError) as raised:
        retrier(slept, attempts=3, backoff_s=1.0).run("read ns/x", step)
    assert step.tries == 3 and slept == [1.0, 2.0]
    assert str(raised.value).splitlines() == [
        "read ns/x: HTTP 502 Bad Gateway: bad gateway (gave up after 3 tries)",
        "the Hub is having trouble: publish again later; nothing was published",
    ]


def test_retries_are_counted_over_all_steps() -> None:
    slept: list[float] = []
    shared = retrier(slept, attempts=5, retries=2, backoff_s=1.0)
    assert shared.run("one", Flaky(HubUnreachable("no answer from hub.test"))) == "done"
    assert shared.run("two", Flaky(HubAnswered(503, "busy"))) == "done"
    with pytest.raises(sd.PublishError, match=r"three: no answer from hub\.test\ncheck the network"):
        shared.run("three", Flaky(HubUnreachable("no answer from hub.test")))
    assert slept == [1.0, 1.0] and shared.retried == 2


def test_a_conflict_is_retried_only_where_the_step_replans() -> None:
    from httpx2 import Request, Response
    from huggingface_hub.errors import HfHubHTTPError

    def conflict() -> HfHubHTTPError:
        response = Response(412, request=Request("POST", "https://hub.test/api/datasets/ns/x/commit/main"))
        return HfHubHTTPError("412 Precondition Failed", response=response, server_message="a commit happened")

    slept: list[float] = []
    assert retrier(slept, backoff_s=0.5).run("commit", Flaky(conflict()), replan=True) == "done"
    with pytest.raises(sd.PublishError, match="upload: HTTP 412 Precondition Failed: a commit happened\nothers"):
        retrier(slept).run("upload", Flaky(conflict()))
    assert slept == [0.5]


def test_a_bug_is_not_turned_into_a_publish_error() -> None:
    with pytest.raises(KeyError):
        retrier([]).run("plan", Flaky(KeyError("splits")))


@pytest.mark.parametrize(
    "policy",
    [{"attempts": 0}, {"retries": -1}, {"backoff_s": -1.0}, {"wait_s": -0.5}],
)
def test_a_nonsensical_policy_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**policy)  # type: ignore[arg-type]
