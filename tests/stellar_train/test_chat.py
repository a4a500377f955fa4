"""Chat with a trained tiny model, greedy: streaming, multi-turn rendering, scripted input, the context
limit, and a memorized answer coming back."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from threading import Thread

import pytest
import torch

from stellar_train import recipe
from stellar_train.chat import MAX_FAILURES_IN_A_ROW, ChatSession, GenerationSettings, load_session, run_chat
from stellar_train.config import from_mapping

QUESTION, ANSWER = "What is the answer?", "The answer is 42."
GREEDY = GenerationSettings(max_new_tokens=12, temperature=0)


@pytest.fixture(scope="module")
def memorized(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter trained until it knows one answer by heart."""
    root = tmp_path_factory.mktemp("chat")
    data = root / "data"
    data.mkdir()
    (data / "train.json").write_text(
        json.dumps([{"instruction": QUESTION, "input": "", "output": ANSWER}]), encoding="utf-8"
    )
    config = from_mapping({
        "base_model": str(tiny_model), "data": str(data), "output_dir": str(root / "adapter"), "precision": "fp32",
        "batching": "random", "batch_size": 1, "micro_batch_size": 1, "max_steps": 40, "learning_rate": 1e-2,
        "warmup_steps": 0, "save_steps": 0, "lora_dropout": 0.0, "validation_split": "",
        "lora_target_modules": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head",
    })  # fmt: skip
    recipe.train(config)
    return root / "adapter"


@pytest.fixture
def session(tiny_model: Path, memorized: Path) -> ChatSession:
    return load_session(str(tiny_model), str(memorized), settings=GREEDY)


def test_the_memorized_answer_comes_back(session: ChatSession) -> None:
    assert session.template.name == "stellarspeak"  # the adapter's template, from its run record
    assert session.reply(QUESTION) == ANSWER


def test_streamed_pieces_make_the_answer(session: ChatSession) -> None:
    pieces: list[str] = []
    answer = session.reply("Why do stars twinkle?", pieces.append)
    assert pieces and answer
    assert "".join(pieces) == answer
    assert session.history == [("Why do stars twinkle?", answer)]
    # Greedy decoding is deterministic.
    session.history.clear()
    assert session.reply("Why do stars twinkle?") == answer


def test_history_is_rendered_in_the_same_template(session: ChatSession) -> None:
    first = session.reply(QUESTION)
    second = session.reply("什么是脉冲星？")
    assert [q for q, _ in session.history] == [QUESTION, "什么是脉冲星？"]
    template = session.template
    rendered = session.render("Name a planet.")
    assert rendered == "\n".join(
        [
            template.prompt(QUESTION) + first,
            template.prompt("什么是脉冲星？") + second,
            template.prompt("Name a planet."),
        ]
    )
    assert rendered.count(template.response_split) == 3
    assert rendered.endswith(template.prompt("Name a planet."))


def test_run_chat_answers_one_message_per_line(session: ChatSession) -> None:
    streamed: list[list[str]] = []
    reply = session.reply

    def recording(message: str, on_text=lambda _: None) -> str:
        pieces: list[str] = []
        streamed.append(pieces)
        return reply(message, lambda piece: (pieces.append(piece), on_text(piece)))

    session.reply = recording  # type: ignore[method-assign]
    out = io.StringIO()
    run_chat(
        session, ["hello\n", "/reset\n", "\n", "again\n", "/exit\n", "ignored\n"], out, interactive=False, style="plain"
    )
    text = out.getvalue()
    assert len(streamed) == 2  # hello, again; the empty line, /reset and everything after /exit are not messages
    assert text == "".join("".join(pieces) + "\n" for pieces in streamed)
    assert "you>" not in text and "assistant>" not in text
    assert [q for q, _ in session.history] == ["again"]  # /reset forgot "hello"


def test_interactive_plain_chat_marks_turns(session: ChatSession) -> None:
    out = io.StringIO()
    run_chat(session, [QUESTION + "\n", "/quit\n"], out, interactive=True, style="plain")
    assert out.getvalue() == f"you> assistant> {ANSWER}\nyou> "


def test_rich_style_writes_no_escape_codes_to_a_pipe(session: ChatSession) -> None:
    out = io.StringIO()
    run_chat(session, [QUESTION + "\n"], out, interactive=False, style="rich")
    assert out.getvalue() == ANSWER + "\n"


def test_the_context_limit_drops_the_oldest_turns(tiny_model: Path, memorized: Path) -> None:
    probe = load_session(str(tiny_model), str(memorized), settings=GREEDY)
    turns = [
        ("Name a planet.", "Mars."),
        ("Name the gas giants.", "Jupiter and Saturn."),
        ("什么是脉冲星？", "快速自转的中子星。"),
    ]

    def prompt_tokens(history: list[tuple[str, str]]) -> int:
        probe.history = list(history)
        return 1 + len(probe.tokenizer(probe.render(QUESTION), add_special_tokens=False)["input_ids"])  # + BOS

    fits_last_turn = prompt_tokens(turns[-1:]) + GREEDY.max_new_tokens
    assert prompt_tokens(turns[-2:]) + GREEDY.max_new_tokens > fits_last_turn
    limited = load_session(
        str(tiny_model), str(memorized),
        settings=GenerationSettings(max_new_tokens=GREEDY.max_new_tokens, temperature=0, context_tokens=fits_last_turn),
    )  # fmt: skip
    limited.history = list(turns)
    answer = limited.reply(QUESTION)
    assert limited.history == [turns[-1], (QUESTION, answer)]

    # A message longer than the whole context still gets an answer, with no history left.
    tiny = load_session(
        str(tiny_model), str(memorized), settings=GenerationSettings(max_new_tokens=4, temperature=0, context_tokens=8)
    )
    tiny.history = list(turns)
    tiny.reply(QUESTION)
    assert [q for q, _ in tiny.history] == [QUESTION]


def test_sampling_settings_generate(tiny_model: Path, memorized: Path) -> None:
    import torch

    sampled = load_session(
        str(tiny_model), str(memorized), settings=GenerationSettings(max_new_tokens=6, temperature=0.7)
    )
    torch.manual_seed(0)
    answer = sampled.reply(QUESTION)
    assert isinstance(answer, str) and sampled.history == [(QUESTION, answer)]


def test_template_comes_from_the_adapter_unless_given(tiny_model: Path, memorized: Path, tmp_path: Path) -> None:
    import shutil

    adapter = tmp_path / "alpaca_adapter"
    shutil.copytree(memorized, adapter)
    run = json.loads((adapter / "train_config.json").read_text(encoding="utf-8"))
    run["config"]["template"] = "alpaca"
    (adapter / "train_config.json").write_text(json.dumps(run), encoding="utf-8")
    assert load_session(str(tiny_model), str(adapter), settings=GREEDY).template.name == "alpaca"
    chosen = load_session(str(tiny_model), str(adapter), template="stellarspeak", settings=GREEDY)
    assert chosen.template.name == "stellarspeak"


def test_base_model_without_adapter_chats(tiny_model: Path) -> None:
    plain = load_session(str(tiny_model), settings=GenerationSettings(max_new_tokens=5, temperature=0))
    assert plain.template.name == "stellarspeak"
    assert plain.tokenizer.pad_token_id is not None and plain.tokenizer.pad_token_id != plain.tokenizer.eos_token_id
    plain.reply("hello")
    assert len(plain.history) == 1


class Flaky:
    """A model whose first `failures` generate calls stream `streamed` token ids and then raise `error` (as
    CUDA running out of memory does mid-answer); `error=None`: they return without ending the stream.
    Later calls are the real model's."""

    def __init__(self, model, failures: int, error: BaseException | None, streamed: list[int] | None = None):
        self.model, self.failures, self.error, self.streamed = model, failures, error, streamed or []
        self.device = model.device
        self.calls = 0

    def generate(self, **kwargs):
        self.calls += 1
        if self.calls > self.failures:
            return self.model.generate(**kwargs)
        streamer = kwargs["streamer"]
        streamer.put(kwargs["input_ids"])  # the prompt, skipped
        for token in self.streamed:
            streamer.put(torch.tensor([token]))
        if self.error is not None:
            raise self.error


OOM = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB"


def finishes(call: Callable[[], object], seconds: float = 60.0):
    """`call()` in a thread: the test fails if it is still running after `seconds` (a hang); else its result
    comes back, or its exception is raised here."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # re-raised below
            outcome["error"] = exc

    thread = Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: it hangs")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def flaky(session: ChatSession, failures: int, error: BaseException | None, streamed: list[int] | None = None):
    session.model = Flaky(session.model, failures, error, streamed)
    return session.model


def test_a_failing_generate_raises_in_the_caller_instead_of_hanging(session: ChatSession) -> None:
    streamed = session.tokenizer("The answer is", add_special_tokens=False)["input_ids"]
    flaky(session, 1, torch.OutOfMemoryError(OOM), streamed)
    pieces: list[str] = []
    with pytest.raises(torch.OutOfMemoryError, match="CUDA out of memory"):
        finishes(lambda: session.reply(QUESTION, pieces.append))
    assert "".join(pieces).strip() == "The answer is"  # what was streamed before the failure still came
    assert session.history == []  # a failed turn is not remembered
    assert finishes(lambda: session.reply(QUESTION)) == ANSWER  # the next message is answered


def test_a_generate_that_never_ends_the_stream_does_not_hang(session: ChatSession) -> None:
    streamed = session.tokenizer("The answer", add_special_tokens=False)["input_ids"]
    flaky(session, 1, None, streamed)
    assert finishes(lambda: session.reply(QUESTION)).startswith("The")


def test_run_chat_reports_a_failed_message_and_answers_the_next(session: ChatSession) -> None:
    flaky(session, 1, torch.OutOfMemoryError(OOM))
    out, err = io.StringIO(), io.StringIO()
    failed = finishes(lambda: run_chat(session, ["hello\n", QUESTION + "\n"], out, interactive=False, style="plain",
                                       err=err))  # fmt: skip
    assert failed == 1
    assert out.getvalue() == f"\n{ANSWER}\n"  # one line per message: the failed one is empty
    [line] = err.getvalue().splitlines()
    assert line.startswith(f"error: {OOM}") and "/reset" in line
    assert session.history == [(QUESTION, ANSWER)]


def test_run_chat_stops_when_messages_fail_in_a_row(session: ChatSession) -> None:
    model = flaky(session, 99, RuntimeError("boom"))
    out, err = io.StringIO(), io.StringIO()
    lines = [f"message {n}\n" for n in range(MAX_FAILURES_IN_A_ROW + 2)]
    failed = finishes(lambda: run_chat(session, lines, out, interactive=True, style="plain", err=err))
    assert failed == model.calls == MAX_FAILURES_IN_A_ROW
    errors = err.getvalue().splitlines()
    assert errors[:-1] == ["error: boom"] * (MAX_FAILURES_IN_A_ROW - 1)
    assert errors[-1].startswith("error: boom") and f"{MAX_FAILURES_IN_A_ROW} messages in a row failed" in errors[-1]
    assert out.getvalue() == "you> " + "assistant> \nyou> " * (MAX_FAILURES_IN_A_ROW - 1) + "assistant> \n"


@pytest.fixture
def checkpoint(lora_weights: Path, write_run_record, tmp_path: Path) -> Path:
    """A Trainer `checkpoint-N` folder: adapter weights, no tokenizer; the run record in the parent."""
    out = tmp_path / "out"
    shutil.copytree(lora_weights, out / "checkpoint-2")
    write_run_record(out, template="alpaca")
    return out / "checkpoint-2"


def test_chat_with_a_checkpoint_folder_uses_the_base_tokenizer(checkpoint: Path, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    assert not (checkpoint / "tokenizer_config.json").exists()
    chat = load_session(str(tiny_model), str(checkpoint), settings=GenerationSettings(max_new_tokens=4, temperature=0))
    assert chat.template.name == "alpaca"  # from the run record in the parent folder
    text = "What is a pulsar?"
    assert chat.tokenizer(text)["input_ids"] == AutoTokenizer.from_pretrained(tiny_model)(text)["input_ids"]
    assert isinstance(chat.reply(text), str) and len(chat.history) == 1
