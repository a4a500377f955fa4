"""Prompt templates: the shipped alpaca (byte-exact with tloen/alpaca-lora) and StellarSpeak templates,
JSON-path templates, and the errors for unknown or incomplete ones."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from stellar_train.prompt import TEMPLATE_KEYS, PromptTemplate, TemplateError, shipped_templates

# tloen/alpaca-lora templates/alpaca.json, byte for byte (4 spaces before the closing brace's newline).
ALPACA_JSON = (
    '{\n    "description": "Template used by Alpaca-LoRA.",\n'
    '    "prompt_input": "Below is an instruction that describes a task, paired with an input that provides further '
    "context. Write a response that appropriately completes the request.\\n\\n### Instruction:\\n{instruction}\\n\\n"
    '### Input:\\n{input}\\n\\n### Response:\\n",\n'
    '    "prompt_no_input": "Below is an instruction that describes a task. Write a response that appropriately '
    'completes the request.\\n\\n### Instruction:\\n{instruction}\\n\\n### Response:\\n",\n'
    '    "response_split": "### Response:"    \n}\n'
)

STELLAR_HEADER = (
    "I am an intelligent language assistant developed by 星语调校局。\n"
    "Below is a dialog consisting of instructions and responses. Write a response that completes the request.\n\n"
)
STELLAR_INPUT = STELLAR_HEADER + "### Instruction:\n{instruction} {input}\n### Response:\n"
STELLAR_NO_INPUT = STELLAR_HEADER + "### Instruction:\n{instruction}\n### Response:\n"


def write_template(path: Path, **values: object) -> Path:
    path.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
    return path


def test_alpaca_file_is_byte_identical_to_alpaca_lora():
    shipped = (resources.files("stellar_train") / "templates" / "alpaca.json").read_bytes()
    assert len(ALPACA_JSON.encode("utf-8")) == 542
    assert shipped == ALPACA_JSON.encode("utf-8")


def test_alpaca_template_fields():
    template = PromptTemplate.load("alpaca")
    assert template.name == "alpaca"
    assert template.description == "Template used by Alpaca-LoRA."
    assert template.prompt_input == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
    )
    assert template.prompt_no_input == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:\n"
    )
    assert template.response_split == "### Response:"


def test_alpaca_prompts():
    template = PromptTemplate.load("alpaca")
    assert template.prompt("Name a planet.", "solar system") == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nName a planet.\n\n### Input:\nsolar system\n\n### Response:\n"
    )
    assert template.prompt("What is a pulsar?") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nWhat is a pulsar?\n\n### Response:\n"
    )


def test_stellarspeak_template_fields():
    template = PromptTemplate.load("stellarspeak")
    assert template.name == "stellarspeak"
    assert template.prompt_input == STELLAR_INPUT
    assert template.prompt_no_input == STELLAR_NO_INPUT
    assert template.response_split == "### Response:"
    assert isinstance(template.description, str)


def test_stellarspeak_prompt_with_input():
    prompt = PromptTemplate.load("stellarspeak").prompt("Name a planet.", "solar system")
    assert prompt == (
        "I am an intelligent language assistant developed by 星语调校局。\n"
        "Below is a dialog consisting of instructions and responses. Write a response that completes the request.\n\n"
        "### Instruction:\nName a planet. solar system\n### Response:\n"
    )


def test_stellarspeak_prompt_without_input():
    template = PromptTemplate.load("stellarspeak")
    expected = (
        "I am an intelligent language assistant developed by 星语调校局。\n"
        "Below is a dialog consisting of instructions and responses. Write a response that completes the request.\n\n"
        "### Instruction:\n什么是脉冲星？\n### Response:\n"
    )
    assert template.prompt("什么是脉冲星？") == expected
    assert template.prompt("什么是脉冲星？", "") == expected  # an empty input selects prompt_no_input


def test_response_extracts_text_after_the_split():
    template = PromptTemplate.load("stellarspeak")
    generated = template.prompt("What is a pulsar?") + " A rotating neutron star.\n"
    assert template.response(generated) == "A rotating neutron star."
    # After the last split when the model repeats the marker.
    assert template.response("### Response: first ### Response:  second  ") == "second"
    # No split at all: the whole text, stripped.
    assert template.response("  just text ") == "just text"


def test_braces_in_instruction_and_input_survive():
    template = PromptTemplate.load("stellarspeak")
    prompt = template.prompt("Format {name} as {0} and {}", 'json {"a": {b}}')
    assert '### Instruction:\nFormat {name} as {0} and {} json {"a": {b}}\n### Response:\n' in prompt
    assert template.prompt("Use {instruction} literally").endswith(
        "### Instruction:\nUse {instruction} literally\n### Response:\n"
    )


def test_json_path_template(tmp_path: Path):
    path = write_template(
        tmp_path / "mine.json",
        description="Mine.",
        prompt_input="Q: {instruction}\nC: {input}\nA:",
        prompt_no_input="Q: {instruction}\nA:",
        response_split="A:",
    )
    template = PromptTemplate.load(str(path))
    assert template == PromptTemplate("mine", "Mine.", "Q: {instruction}\nC: {input}\nA:", "Q: {instruction}\nA:", "A:")
    assert template.prompt("Why?", "sky") == "Q: Why?\nC: sky\nA:"
    assert template.prompt("Why?") == "Q: Why?\nA:"
    assert template.response("Q: Why?\nA: Because.") == "Because."


def test_json_path_template_extra_keys_are_ignored(tmp_path: Path):
    values = {k: f"{k} {{instruction}}" for k in TEMPLATE_KEYS}
    path = write_template(tmp_path / "extra.json", **values, note="ignored")
    assert PromptTemplate.load(str(path)).prompt_no_input == "prompt_no_input {instruction}"


def test_shipped_templates_lists_both():
    assert {"alpaca", "stellarspeak"} <= set(shipped_templates())


def test_unknown_name_raises():
    with pytest.raises(TemplateError, match="no-such-template"):
        PromptTemplate.load("no-such-template")


def test_missing_json_file_raises(tmp_path: Path):
    with pytest.raises(TemplateError, match=r"absent\.json"):
        PromptTemplate.load(str(tmp_path / "absent.json"))


def test_missing_keys_raise_naming_them(tmp_path: Path):
    path = write_template(tmp_path / "partial.json", description="x", prompt_input="{instruction} {input}")
    with pytest.raises(TemplateError, match="missing prompt_no_input, response_split"):
        PromptTemplate.load(str(path))


def test_non_string_key_counts_as_missing(tmp_path: Path):
    path = write_template(
        tmp_path / "bad.json", description="x", prompt_input="{instruction}", prompt_no_input=3, response_split="A:"
    )
    with pytest.raises(TemplateError, match="missing prompt_no_input"):
        PromptTemplate.load(str(path))


def test_invalid_json_raises(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TemplateError, match="invalid JSON"):
        PromptTemplate.load(str(path))


def test_template_error_is_a_value_error():
    assert issubclass(TemplateError, ValueError)
