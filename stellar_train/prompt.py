"""Prompt templates in alpaca-lora's JSON format: description, prompt_input, prompt_no_input,
response_split. `alpaca` (tloen/alpaca-lora, byte-exact) and `stellarspeak` ship as package data;
any other template is a path to a JSON file of the same shape."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

TEMPLATE_KEYS = ("description", "prompt_input", "prompt_no_input", "response_split")


class TemplateError(ValueError):
    """A template that cannot be found or lacks a key."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    description: str
    prompt_input: str
    prompt_no_input: str
    response_split: str

    @classmethod
    def load(cls, name_or_path: str) -> PromptTemplate:
        """A shipped template by name (`alpaca`, `stellarspeak`) or a JSON file."""
        path = Path(name_or_path)
        if path.suffix == ".json" or path.exists():
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise TemplateError(f"template {name_or_path}: {exc.strerror}") from None
            name = path.stem
        else:
            shipped = resources.files("stellar_train") / "templates" / f"{name_or_path}.json"
            if not shipped.is_file():
                raise TemplateError(f"no template named {name_or_path!r} (shipped: {', '.join(shipped_templates())})")
            text, name = shipped.read_text(encoding="utf-8"), name_or_path
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(f"template {name_or_path}: invalid JSON: {exc}") from None
        missing = [k for k in TEMPLATE_KEYS if not isinstance(data.get(k), str)]
        if missing:
            raise TemplateError(f"template {name_or_path}: missing {', '.join(missing)}")
        return cls(name, *(data[k] for k in TEMPLATE_KEYS))

    def prompt(self, instruction: str, input: str = "") -> str:
        """The prompt for one turn; the response follows it directly."""
        if input:
            return self.prompt_input.format(instruction=instruction, input=input)
        return self.prompt_no_input.format(instruction=instruction)

    def response(self, generated: str) -> str:
        """The answer part of a generated text (after the last `response_split`)."""
        return generated.split(self.response_split)[-1].strip()


def shipped_templates() -> list[str]:
    folder = resources.files("stellar_train") / "templates"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))
