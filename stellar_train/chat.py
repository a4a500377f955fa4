"""Chat with a model (and optionally an adapter) using the training template, streaming tokens.

Multi-turn: earlier turns are rendered with the same template (prompt + answer each) before the new
prompt, oldest turns dropped first when the context would overflow. Reads a terminal interactively
or a pipe line by line (one message per line), so it can be scripted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from threading import Thread
from typing import TextIO

from .prompt import PromptTemplate


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
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
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
        worker = Thread(target=self.model.generate, kwargs=kwargs)
        worker.start()
        pieces = []
        for piece in streamer:
            pieces.append(piece)
            on_text(piece)
        worker.join()
        answer = "".join(pieces).strip()
        self.history.append((message, answer))
        return answer


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

    from .model import read_run_config

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
    tokenizer = AutoTokenizer.from_pretrained(adapter if adapter and run else model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return ChatSession(model, tokenizer, PromptTemplate.load(template_name), settings or GenerationSettings())


def run_chat(
    session: ChatSession, lines: Iterable[str], out: TextIO, *, interactive: bool, style: str = "plain"
) -> None:
    """One answer per input line; `rich` styles the turn markers, `plain` writes text only."""
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
        session.reply(message, stream)
        out.write("\n")
        if interactive:
            mark("you> ")
        out.flush()


def stdin_lines() -> Iterable[str]:
    return iter(sys.stdin.readline, "")
