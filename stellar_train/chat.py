"""Chat with a model (and optionally an adapter) using the training template, streaming tokens.

Multi-turn: earlier turns are rendered with the same template (prompt + answer each) before the new
prompt, oldest turns dropped first when the context would overflow. Reads a terminal interactively
or a pipe line by line (one message per line), so it can be scripted.

A message whose generation fails (CUDA out of memory, say) gets one `error: ...` line on stderr and
an empty (or partly streamed) answer line on stdout, so answers stay one per line, and the session
goes on with the next message (after an out-of-memory, /reset or a shorter message may fit). Only
when MAX_FAILURES_IN_A_ROW messages fail in a row, as they do when the model cannot generate at
all, does the chat stop; `stellar-train chat` then exits 2, as it does when any message failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from queue import Empty
from threading import Thread
from typing import TextIO

from .prompt import PromptTemplate

MAX_FAILURES_IN_A_ROW = 3
POLL_SECONDS = 0.5
"""How often the streamed answer checks that generation is still running while no token comes."""


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.7
    """0 for greedy decoding."""
    top_p: float = 0.9
    context_tokens: int = 2048


@dataclass
class ChatSession:
    model: object
    tokenizer: object
    template: PromptTemplate
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    history: list[tuple[str, str]] = field(default_factory=list)

    def render(self, message: str) -> str:
        """The prompt for `message` after the history, every turn in the same template."""
        turns = [self.template.prompt(q) + a for q, a in self.history]
        return "\n".join([*turns, self.template.prompt(message)])

    def _prompt_ids(self, message: str) -> list[int]:
        tok = self.tokenizer
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        while True:
            ids = bos + tok(self.render(message), add_special_tokens=False)["input_ids"]
            if len(ids) + self.settings.max_new_tokens <= self.settings.context_tokens or not self.history:
                return ids
            self.history.pop(0)  # forget the oldest turn

    def reply(self, message: str, on_text: Callable[[str], None] = lambda _: None) -> str:
        """Generate the answer, calling `on_text` with each streamed piece; remembers the turn."""
        import torch
        from transformers import TextIteratorStreamer

        ids = torch.tensor([self._prompt_ids(message)], device=self.model.device)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=POLL_SECONDS
        )
        sampling = self.settings.temperature > 0
        kwargs = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "max_new_tokens": self.settings.max_new_tokens,
            "do_sample": sampling,
            "streamer": streamer,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if sampling:
            kwargs |= {"temperature": self.settings.temperature, "top_p": self.settings.top_p}
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                self.model.generate(**kwargs)
            except BaseException as exc:  # raised again below, in the caller's thread
                failure.append(exc)
                streamer.end()  # generate did not end the stream: end it, or the loop below waits forever

        worker = Thread(target=generate, daemon=True)  # daemon: Ctrl-C does not wait for the answer
        worker.start()
        pieces = []
        for piece in _pieces(streamer, worker):
            pieces.append(piece)
            on_text(piece)
        worker.join()
        if failure:
            raise failure.pop()  # popped: no cycle keeps the traceback (and the failed generate's tensors) alive
        answer = "".join(pieces).strip()
        self.history.append((message, answer))
        return answer


def _pieces(streamer, worker: Thread) -> Iterator[str]:
    """The streamed text until the stream ends, or until the worker has stopped without ending it."""
    stopped = False
    while True:
        try:
            yield next(streamer)
        except StopIteration:
            return
        except Empty:  # no piece within POLL_SECONDS
            if stopped:
                return  # one more wait after the worker stopped took whatever it had put
            stopped = not worker.is_alive()


def describe(exc: Exception) -> str:
    """One line for a failed message."""
    import torch

    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if isinstance(exc, torch.OutOfMemoryError):
        text += " (/reset clears the history; a shorter message or --max-new-tokens needs less memory)"
    return text


def load_session(
    model_path: str,
    adapter: str | None = None,
    *,
    template: str | None = None,
    load_8bit: bool = False,
    settings: GenerationSettings | None = None,
) -> ChatSession:
    """Model (+ adapter) in eval mode; the template defaults to the one the adapter was trained with."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from .model import tokenizer_source
    from .run_record import read_run_config

    run = read_run_config(adapter) if adapter else {}
    template_name = template or run.get("config", {}).get("template", "stellarspeak")
    cuda = torch.cuda.is_available()
    kwargs: dict = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if load_8bit:
        kwargs |= {"quantization_config": BitsAndBytesConfig(load_in_8bit=True), "device_map": "auto"}
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    if cuda and not load_8bit:
        model = model.to("cuda")
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(model_path, adapter))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return ChatSession(model, tokenizer, PromptTemplate.load(template_name), settings or GenerationSettings())


def run_chat(
    session: ChatSession,
    lines: Iterable[str],
    out: TextIO,
    *,
    interactive: bool,
    style: str = "plain",
    err: TextIO | None = None,
) -> int:
    """One answer per input line; `rich` styles the turn markers, `plain` writes text only. A failed
    message writes `error: ...` to `err` (stderr); returns how many failed (see the module docstring)."""
    err = err or sys.stderr
    if style == "rich":
        from rich.console import Console

        console = Console(file=out, force_terminal=interactive, highlight=False)

        def mark(text: str) -> None:
            console.print(f"[bold cyan]{text}[/]", end="")
    else:

        def mark(text: str) -> None:
            out.write(text)

    def stream(piece: str) -> None:
        out.write(piece)
        out.flush()

    failed = in_a_row = 0
    if interactive:
        mark("you> ")
        out.flush()
    for line in lines:
        message = line.strip()
        if not message:
            continue
        if message in ("/exit", "/quit"):
            break
        if message == "/reset":
            session.history.clear()
            continue
        mark("assistant> " if interactive else "")
        try:
            session.reply(message, stream)
            in_a_row = 0
        except Exception as exc:
            failed, in_a_row = failed + 1, in_a_row + 1
            out.write("\n")  # the (empty or partly streamed) answer line
            out.flush()
            stop = in_a_row >= MAX_FAILURES_IN_A_ROW
            err.write(f"error: {describe(exc)}{f' ({in_a_row} messages in a row failed: stopping)' if stop else ''}\n")
            err.flush()
            if stop:
                break
        else:
            out.write("\n")
        if interactive:
            mark("you> ")
        out.flush()
    return failed


def stdin_lines() -> Iterable[str]:
    return iter(sys.stdin.readline, "")
