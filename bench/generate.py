"""Seeded synthetic sources for `make bench`, in the real upstream formats our adapters read.

    .venv/bin/python bench/generate.py --records 100000 --seed 1 [--out DIR]

writes into DIR (default build/bench/data/n<N>-s<seed>):

- `Astro-QA/data/{ZH,EN}/*.xlsx`: one workbook per question type and language, with the upstream
  sheet and header layout (ZH header typos `Subfiled`, `World Count`; EN without Subfield; EN
  judgment answers as Excel booleans; padding with U+3000 / U+2002, an invisible U+2061 here and
  there). About 2% of the records, ZH and EN rows of the same ID. A few matching rows too, which
  have no answer key upstream and are excluded by the adapter: they are not counted in N.
- `grade-school-math/grade_school_math/data/{train,test}.jsonl`: GSM8K `{question, answer}` with
  `<<a*b=c>>` annotations and `#### <final>`; 10% of the records. `test.jsonl` is the eval set of
  the decontamination step (not counted in N) and a few train questions are copied from it.
- `LLaMA-Factory/data/identity.json` (self-cognition, `{{name}}` / `{{author}}` placeholders) and
  `alpaca_{zh,en}_part<k>.json`: LLaMA-Factory JSON arrays, the bulk, 4 files per language.
- `core/part-<k>.jsonl`: the same N records in alpaca shape, as 4 JSON Lines files: the input of the
  "core chain" that ours, the naive script and datatrove all run on.
- `recipe.toml` (every step) and `core.toml` (normalize + OpenCC, validate, exact dedup, split, mix).

In every source 10% of the records are exact copies of an earlier record, 2% are malformed (missing
or empty fields, wrong types, broken JSON lines where the format is JSON Lines), ~1% are planted
near-duplicates and some Chinese text is written in traditional characters (0.5% of the Chinese
Alpaca records are traditional twins of an earlier record: duplicates once OpenCC has run).

Generation is cached: a folder whose `.generated.json` matches (version, N, seed) is reused.
Same (N, seed) => byte-identical files (workbooks are written with fixed timestamps).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_text import TextMaker, lengths

ROOT = Path(__file__).resolve().parents[1]
VERSION = 8
"""Bump when the output changes, so cached folders are regenerated."""
STAMP = ".generated.json"
CORE_FILES = 4
ALPACA_FILES = 4
DUP_SHARE, BAD_SHARE, NEAR_SHARE, TRAD_SHARE = 0.10, 0.02, 0.01, 0.005
_FIXED_TIME = dt.datetime(2024, 1, 1)


@dataclass(frozen=True)
class Broken:
    """A record written as a JSON line cut off in the middle (an interrupted write)."""

    record: dict[str, Any]

    def line(self) -> str:
        text = json.dumps(self.record, ensure_ascii=False)
        return text[: max(10, len(text) * 3 // 5)]


Record = dict[str, Any] | Broken


@dataclass
class Sizes:
    astro_items: int
    """Items per language (ZH + EN rows = 2x)."""
    gsm8k: int
    identity: int
    alpaca_zh: int
    alpaca_en: int

    @classmethod
    def for_total(cls, n: int) -> Sizes:
        astro = max(20, round(n * 0.01))
        gsm8k = max(10, round(n * 0.10))
        identity = max(50, round(n * 0.002))
        rest = n - 2 * astro - gsm8k - identity
        if rest < 20:
            raise ValueError(f"--records {n} is too small: the fixed minimum shares leave {rest} Alpaca records")
        return cls(astro, gsm8k, identity, rest - rest // 2, rest // 2)


# --- planting duplicates, defects, near-duplicates -------------------------------------------------


def plant(records: list[Record], rng: np.random.Generator, defect: Callable[[Record, int], Record],
          near: Callable[[Record], Record | None] | None = None,
          twin: Callable[[Record], Record | None] | None = None) -> list[Record]:  # fmt: skip
    """Turn exact shares of the records into copies / defects / near-duplicates / twins of earlier ones.

    A copy is taken from an earlier untouched record, so shares stay exact and copies of defects
    never inflate the malformed share.
    """
    n = len(records)
    order = rng.permutation(np.arange(1, n)) if n > 1 else np.array([], dtype=np.int64)
    quotas = [("dup", DUP_SHARE), ("bad", BAD_SHARE), ("near", NEAR_SHARE if near else 0),
              ("twin", TRAD_SHARE if twin else 0)]  # fmt: skip
    role = np.zeros(n, dtype=np.int8)
    start = 0
    for code, (_, share) in enumerate(quotas, start=1):
        count = round(n * share)
        role[order[start : start + count]] = code
        start += count
    plain = np.flatnonzero(role == 0)
    out = list(records)
    picks = rng.random(n)
    defects = 0
    for i in np.flatnonzero(role):
        earlier = plain[: np.searchsorted(plain, i)]
        kind = quotas[role[i] - 1][0]
        if kind == "bad":  # the defect kinds in turn, so that each shows up even in a small source
            out[i] = defect(records[i], defects)
            defects += 1
            continue
        if len(earlier) == 0:
            continue
        source = records[int(earlier[int(picks[i] * len(earlier))])]
        if kind == "dup":
            out[i] = dict(source) if isinstance(source, dict) else source
        else:
            made = (near if kind == "near" else twin)(source)  # type: ignore[misc]
            if made is not None:
                out[i] = made
    return out


SIMPLIFIED_TO_TRADITIONAL = {
    "观测": "觀測", "银河系": "銀河系", "光谱": "光譜", "恒星": "恆星", "轨道": "軌道", "质量": "質量",
    "周期": "週期", "变星": "變星", "望远镜": "望遠鏡", "卫星": "衛星", "辐射": "輻射", "红移": "紅移",
    "星云": "星雲", "计算": "計算", "数据": "數據", "温度": "溫度",
}  # fmt: skip


def traditional_twin(record: Record) -> Record | None:
    """The record with some words in traditional characters (OpenCC t2s gives the original back)."""
    if not isinstance(record, dict):
        return None
    twin = dict(record)
    for key in ("instruction", "output"):
        text = twin.get(key)
        if isinstance(text, str):
            for simplified, traditional in SIMPLIFIED_TO_TRADITIONAL.items():
                text = text.replace(simplified, traditional)
            twin[key] = text
    return twin if twin != record else None


def near_duplicate(record: Record, field: str = "output") -> Record | None:
    """A one-word edit in the middle of a long text: a near-duplicate, not an exact one."""
    if not isinstance(record, dict) or not isinstance(record.get(field), str) or len(record[field]) < 200:
        return None
    text = record[field]
    middle = len(text) // 2
    if text.isascii():
        edited = text[:middle] + " indeed" + text[middle:]
    else:
        edited = text[:middle] + ("星" if text[middle] != "星" else "云") + text[middle + 1 :]
    return {**record, field: edited}


def alpaca_defect(record: Record, index: int) -> Record:
    """Records that fail validation: a missing field, an empty one, a wrong type, a blank one."""
    assert isinstance(record, dict)
    kind = index % 4
    if kind == 0:
        return {k: v for k, v in record.items() if k != "output"}
    if kind == 1:
        return {**record, "instruction": ""}
    if kind == 2:
        return {**record, "output": len(record["output"])}
    return {**record, "output": " \u3000 "}


# --- sources -----------------------------------------------------------------------------------------


def alpaca_records(rng: np.random.Generator, maker: TextMaker, n: int) -> list[Record]:
    zh = maker.lang == "zh"
    instructions = maker.texts(lengths(rng, n, 24 if zh else 60, 0.5, 6, 300))
    has_input = rng.random(n) < 0.4
    inputs = maker.texts(lengths(rng, n, 50 if zh else 110, 0.8, 5, 600))
    outputs = maker.texts(lengths(rng, n, 220 if zh else 420, 0.9, 20, 1500))
    prefixed = rng.random(n)
    records: list[Record] = []
    for i in range(n):
        input_ = inputs[i] if has_input[i] else ""
        output = outputs[i]
        if zh and input_ and prefixed[i] < 0.09:
            input_ = "输入：" + input_  # the LLaMA-Factory zh demo's artefacts
        if zh and prefixed[i] > 0.985:
            output = "输出：" + output
        records.append({"instruction": instructions[i], "input": input_, "output": output})
    twin = traditional_twin if zh else None
    return plant(records, rng, alpaca_defect, near_duplicate, twin)


_NAME_LIST = (
    "Janet Tom Maria Ahmed Wei Sofia James Aiko Carlos Priya Olga Kwame Lena Omar Grace Ivan Mei Pablo Nadia Ravi "
    "Emma Noah Chloe Liam Zara Felix Hana Diego Amara Yusuf Ingrid Tariq Rosa Kenji Leila Mateo Anika Samuel Elif"
)
_THING_LIST = (
    "apples stickers books marbles cookies pencils eggs tickets stamps shells cupcakes bottles seeds coins cards "
    "candles boxes flowers bricks lemons shirts plates balloons puzzles crayons muffins oranges ribbons toys nails"
)
_NAMES, _THINGS = tuple(_NAME_LIST.split()), tuple(_THING_LIST.split())
_VERBS = ("buys", "collects", "finds", "receives", "bakes", "picks", "orders", "makes")
_PLACES = ("at the market", "from the store", "at school", "in the garden", "at the fair", "online", "at work", "")
_TEMPLATES = (
    # (statement, question, steps, result) over a, b, d in 2..89. Fixed wording runs stay shorter than the
    # 8-token windows of decontamination: real GSM8K problems share phrases, not whole 8-grams.
    (
        "{n} has {a} {t}. Each day {n} {v} {b} more {p}.",
        "How many {t} after {d} days?",
        ["{b} * {d} = <<{b}*{d}={bd}>>{bd} new {t}.", "{a} + {bd} = <<{a}+{bd}={r}>>{r} {t} for {n}."],
        lambda a, b, d: a + b * d,
    ),
    (
        "One crate of {n} holds {a} red and {b} green {t}.",
        "{n} fills {d} crates. How many {t}?",
        ["{a} + {b} = <<{a}+{b}={ab}>>{ab} {t} per crate.", "{ab} * {d} = <<{ab}*{d}={r}>>{r} {t} in all."],
        lambda a, b, d: (a + b) * d,
    ),
    (
        "{n} sells {a} {t} {p} at ${d} each and pays ${b} for a ride.",
        "What does {n} keep?",
        ["Sales: {a} * {d} = $<<{a}*{d}={ad}>>{ad}.", "{ad} - {b} = $<<{ad}-{b}={r}>>{r} for {n}."],
        lambda a, b, d: a * d - b,
    ),
    (
        "{d} shelves hold {a} {t} each; {n} {v} {b} of them.",
        "How many {t} stay?",
        ["{d} * {a} = <<{d}*{a}={ad}>>{ad} {t} at first.", "{ad} - {b} = <<{ad}-{b}={r}>>{r} {t} stay."],
        lambda a, b, d: d * a - b,
    ),
    (
        "{n} reads {a} pages, then {b} a day for {d} days.",
        "Pages read by {n}?",
        ["{b} * {d} = <<{b}*{d}={bd}>>{bd} more pages.", "{a} + {bd} = <<{a}+{bd}={r}>>{r} pages for {n}."],
        lambda a, b, d: a + b * d,
    ),
)


def _thousands(value: int, rng: np.random.Generator) -> str:
    return f"{value:,}" if value >= 1000 and rng.random() < 0.3 else str(value)


def gsm8k_item(rng: np.random.Generator, filler: str) -> dict[str, str]:
    """A grade-school word problem and its worked answer, GSM8K style (steps, `<<a*b=c>>`, `#### n`)."""
    head, ask, steps, result = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    a, b, d = (int(x) for x in rng.integers(2, 90, size=3))
    values = {
        "n": str(rng.choice(_NAMES)),
        "t": str(rng.choice(_THINGS)),
        "v": str(rng.choice(_VERBS)),
        "p": str(rng.choice(_PLACES)),
        "a": a,
        "b": b,
        "d": d,
        "ab": a + b,
        "bd": b * d,
        "ad": a * d,
    }
    values["r"] = result(a, b, d)
    question = " ".join(x for x in (head.format(**values).replace(" .", "."), filler, ask.format(**values)) if x)
    answer = "\n".join(step.format(**values) for step in steps)
    return {"question": question, "answer": f"{answer}\n#### {_thousands(values['r'], rng)}"}


def gsm8k_sources(rng: np.random.Generator, maker: TextMaker, n: int) -> tuple[list[Record], list[dict[str, str]]]:
    """(train records, test items); 0.2% of the train questions are copied from the test set."""
    n_test = max(20, min(1319, n // 6))
    fillers = maker.texts(lengths(rng, n + n_test, 60, 0.9, 10, 900))
    test = [gsm8k_item(rng, fillers[n + i]) for i in range(n_test)]
    train: list[Record] = [gsm8k_item(rng, fillers[i]) for i in range(n)]
    for i in rng.choice(n, size=max(1, n // 500), replace=False):
        train[int(i)] = dict(test[int(rng.integers(n_test))])

    def defect(record: Record, index: int) -> Record:
        assert isinstance(record, dict)
        if index % 3 == 0:
            return Broken(record)
        if index % 3 == 1:
            return {"question": record["question"]}
        return {**record, "answer": "  "}

    return plant(train, rng, defect, lambda r: near_duplicate(r, "question")), test


_ID_PROMPTS_ZH = ("你好", "你是谁？", "介绍一下你自己", "你叫什么名字？", "你是由谁开发的？", "你能做什么？", "嗨")
_ID_PROMPTS_EN = ("hi", "Who are you?", "What is your name?", "Who created you?", "Introduce yourself", "hello")
_ID_ANSWERS_ZH = ("您好，我是 {{name}}，一个由 {{author}} 开发的人工智能助手。", "我是 {{name}}，由 {{author}} 打造。",
                  "您好！我是 {{name}}，很高兴为您服务。")  # fmt: skip
_ID_ANSWERS_EN = ("Hello! I am {{name}}, an AI assistant developed by {{author}}.",
                  "I am {{name}}, created by {{author}}. How can I help you?")  # fmt: skip


def identity_records(rng: np.random.Generator, zh: TextMaker, en: TextMaker, n: int) -> list[Record]:
    is_zh = rng.random(n) < 0.82
    tails_zh = zh.texts(lengths(rng, n, 30, 0.6, 8, 200))
    tails_en = en.texts(lengths(rng, n, 60, 0.6, 15, 300))
    records: list[Record] = []
    for i in range(n):
        prompts, answers, tail = (
            (_ID_PROMPTS_ZH, _ID_ANSWERS_ZH, tails_zh[i]) if is_zh[i] else (_ID_PROMPTS_EN, _ID_ANSWERS_EN, tails_en[i])
        )
        instruction = str(rng.choice(prompts))
        output = str(rng.choice(answers)) + ("" if is_zh[i] else " ") + tail
        records.append({"instruction": instruction, "input": "", "output": output})
    return plant(records, rng, lambda r, index: {**r, "output": None})  # type: ignore[dict-item]


# --- Astro-QA workbooks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AstroKind:
    name: str
    stem: str
    letters: str
    weight: int
    """Upstream rows of this type (ZH), for the mix of types."""


ASTRO_KINDS = (
    AstroKind("single_choice_4", "single-select multi choice(4)", "ABCD", 1297),
    AstroKind("single_choice_5", "single-select multi choice(5)", "ABCDE", 402),
    AstroKind("multi_select", "multi-select multi choice", "ABCD", 157),
    AstroKind("judgment", "judgment", "", 317),
    AstroKind("subjective", "subjective question", "", 554),
)
SUBFIELDS = ("天体物理学", "天体测量学", "天文技术与方法", "天文学史", "天体力学")
_PAD = ("\u3000", "\u2002", "\u00a0", " ")


@dataclass
class AstroItem:
    """One item in one language: the sheet row and the same item as an alpaca triple."""

    row: list[Any]
    core: dict[str, Any]


def _header(kind: AstroKind, lang: str) -> list[str]:
    subfield = [] if lang == "en" else ["Subfiled" if kind.name in ("multi_select", "subjective") else "Subfield"]
    if kind.name == "subjective":
        return ["ID", "Type", *subfield, "Question", "Prompt", "World Count", "Answer"]
    return ["ID", *subfield, "Question", *kind.letters, "Answer", "Parse"]


class AstroWriter:
    """Generates one type's items in both languages, row-aligned by ID."""

    def __init__(self, rng: np.random.Generator, zh: TextMaker, en: TextMaker) -> None:
        self.rng, self.makers = rng, {"zh": zh, "en": en}

    def _text(self, lang: str, median: float, low: int, high: int) -> str:
        text = self.makers[lang].texts(lengths(self.rng, 1, median, 0.6, low, high))[0]
        roll = self.rng.random()
        if roll < 0.01:
            return _PAD[int(self.rng.integers(len(_PAD)))] * 2 + text  # upstream padding
        if roll < 0.015:
            return text[: len(text) // 2] + "\u2061" + text[len(text) // 2 :]  # an invisible operator
        return text

    def content(self, kind: AstroKind, lang: str, subfield: str, answer: str, item_id: int) -> dict[str, Any]:
        zh = lang == "zh"
        if kind.name == "subjective":
            terminology = item_id % 5 < 3
            question = self._text(lang, 4 if zh else 14, 2, 30) if terminology else self._text(lang, 30, 8, 120)
            count = int(self.rng.integers(50, 900))
            if zh:
                prompt = (
                    f"以下是天文学科目的术语：{question}，请解释其含义，把回复控制在{count}个汉字左右。"
                    if terminology
                    else f"以下是天文学科目的问题，请解答并把回复控制在{count}个汉字左右。 问题为：{question}"
                )
                label = "名词解释" if terminology else "简答题"
            else:
                prompt = f"The following is a question in astronomy: {question} Answer in about {count} words."
                label = "terminology" if terminology else "short-answer"
            answer_text = self._text(lang, 250 if zh else 500, 20, 1500)
            return {"Type": label, "Question": question, "Prompt": prompt, "World Count": count,
                    "Answer": answer_text}  # fmt: skip
        fields: dict[str, Any] = {"Question": self._text(lang, 30 if zh else 70, 8, 200)}
        for letter in kind.letters:
            fields[letter] = int(self.rng.integers(1, 500)) if zh and self.rng.random() < 0.05 else (
                self._text(lang, 8 if zh else 20, 1, 80))  # fmt: skip
        if kind.name == "judgment":
            fields["Answer"] = ("对" if answer == "T" else "错") if zh else answer == "T"
        else:
            fields["Answer"] = answer
        none = self.rng.random() < 0.3
        fields["Parse"] = ("略" if zh else "Omitted") if none else self._text(lang, 60 if zh else 140, 10, 600)
        return fields

    def items(self, kind: AstroKind, count: int) -> dict[str, list[AstroItem]]:
        """ZH and EN items; 10% repeat an earlier item under a new ID, 2% of rows are malformed."""
        out: dict[str, list[AstroItem]] = {"zh": [], "en": []}
        contents: list[dict[str, dict[str, Any]]] = []
        bad = set(self.rng.choice(2 * count, size=round(2 * count * BAD_SHARE), replace=False).tolist())
        for index in range(count):
            item_id = index + 1
            if contents and self.rng.random() < DUP_SHARE:
                both = contents[int(self.rng.integers(len(contents)))]
            else:
                subfield = str(self.rng.choice(SUBFIELDS)) if self.rng.random() > 0.01 else "无"
                answer = self._answer(kind)
                both = {lang: {"Subfield": subfield, **self.content(kind, lang, subfield, answer, item_id)}
                        for lang in ("zh", "en")}  # fmt: skip
                contents.append(both)
            for offset, lang in enumerate(("zh", "en")):
                fields = dict(both[lang])
                if 2 * index + offset in bad:
                    fields["Answer" if kind.name == "subjective" and offset else "Question"] = None
                names = ["Subfield" if h == "Subfiled" else h for h in _header(kind, lang)[1:]]
                row = [item_id, *(fields.get(h) for h in names)]
                out[lang].append(AstroItem(row, plain_triple(kind, lang, fields)))
        return out

    def _answer(self, kind: AstroKind) -> str:
        if kind.name == "judgment":
            return "T" if self.rng.random() < 0.5 else "F"
        if kind.name == "multi_select":
            size = int(self.rng.integers(2, 4))
            return "".join(sorted(self.rng.choice(list(kind.letters), size=size, replace=False)))
        if kind.letters:
            return str(self.rng.choice(list(kind.letters)))
        return ""

    def matching_rows(self, lang: str, count: int) -> list[list[Any]]:
        rows = []
        for index in range(count):
            group = [self._text(lang, 20, 4, 60)] + [self._text(lang, 5, 2, 20) for _ in range(3)]
            rows.append([index + 1, index // 4 + 1, *group])
        return rows


def plain_triple(kind: AstroKind, lang: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The item as one alpaca record, as our adapter renders it (an empty cell stays empty)."""
    zh = lang == "zh"

    def cell(name: str) -> str:
        value = fields.get(name)
        return "" if value is None else str(value).strip()

    if kind.name == "subjective":
        return {"instruction": cell("Prompt") if fields.get("Question") else "", "input": "", "output": cell("Answer")}
    parse = cell("Parse")
    explanation = "" if parse in ("略", "Omitted") else parse
    if kind.name == "judgment":
        verdict = fields["Answer"] in ("对", True)
        body = ("正确。" if verdict else "错误。") if zh else ("True." if verdict else "False.")
        instruction = "判断下列说法是否正确。" if zh else "Decide whether the following statement is true or false."
        input_ = cell("Question")
        if not input_:
            instruction = ""
    else:
        sep = "；" if zh else "; "
        body = ("答案：" if zh else "Answer: ") + sep.join(f"{c}. {cell(c)}" for c in cell("Answer"))
        instruction, input_ = cell("Question"), "\n".join(f"{c}. {cell(c)}" for c in kind.letters)
    label = "解析：" if zh else "Explanation: "
    output = f"{body}\n{label}{explanation}" if explanation else body
    return {"instruction": instruction, "input": input_, "output": output}


def write_workbook(path: Path, header: list[str], rows: Iterable[list[Any]]) -> None:
    """An XLSX workbook with one `Sheet1`, written in write-only mode, byte-reproducible."""
    workbook = openpyxl.Workbook(write_only=True)
    workbook.properties.created = workbook.properties.modified = _FIXED_TIME
    sheet = workbook.create_sheet("Sheet1")
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    _freeze_zip(path)


_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def _freeze_zip(path: Path) -> None:
    """Rewrite the archive with fixed entry times and a fixed `modified` property: zipfile stamps
    entries with the clock and openpyxl sets `modified` to the time of saving."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    fixed = _FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    entries = [(n, _MODIFIED.sub(rb"\g<1>" + fixed + rb"\g<2>", d) if n == "docProps/core.xml" else d)
               for n, d in entries]  # fmt: skip
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)


def astro_sources(rng: np.random.Generator, zh: TextMaker, en: TextMaker, items: int, folder: Path) -> list[Record]:
    """Write the workbooks; returns the items as alpaca records (ZH then EN, type by type)."""
    writer = AstroWriter(rng, zh, en)
    total = sum(k.weight for k in ASTRO_KINDS)
    counts = [max(1, items * k.weight // total) for k in ASTRO_KINDS]
    counts[0] += items - sum(counts)
    core: list[Record] = []
    for kind, count in zip(ASTRO_KINDS, counts, strict=True):
        by_lang = writer.items(kind, count)
        for lang in ("zh", "en"):
            name = f"{lang.upper()}/{kind.stem}_{lang.upper()}.xlsx"
            write_workbook(folder / name, _header(kind, lang), (item.row for item in by_lang[lang]))
            core.extend(item.core for item in by_lang[lang])
    for lang in ("zh", "en"):
        rows = writer.matching_rows(lang, max(4, items // 40))
        header = ["ID", "Title ID", "Group 1", "Group 2", "Group 3", "Group 4"]
        write_workbook(folder / f"{lang.upper()}/matching_{lang.upper()}.xlsx", header, rows)
    return core


# --- writing -----------------------------------------------------------------------------------------


def json_line(record: Record) -> str:
    return record.line() if isinstance(record, Broken) else json.dumps(record, ensure_ascii=False)


def write_jsonl(path: Path, records: Iterable[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json_line(record) + "\n")


def _array_item(record: Record) -> str:
    """One element as `json.dump(..., indent=2)` writes a flat record (the LLaMA-Factory layout)."""
    assert isinstance(record, dict)
    fields = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in record.items())
    return "  {\n" + fields + "\n  }"


def write_json_array(path: Path, records: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[\n" + ",\n".join(_array_item(r) for r in records) + "\n]\n", encoding="utf-8")


def chunks(records: list[Record], parts: int) -> list[list[Record]]:
    size = -(-len(records) // parts)
    return [records[i * size : (i + 1) * size] for i in range(parts)]


def recipe_text(seed: int) -> str:
    terms = (ROOT / "corpus" / "protected_terms.txt").as_posix()
    templates = (ROOT / "corpus" / "templates" / "astro_qa.toml").as_posix()
    return f"""# Every step on, over the generated sources (bench/generate.py); sources are relative to this folder.
[corpus]
name = "bench-full"
seed = {seed}

[normalize]
protected_terms = "{terms}"

[quality]
max_quarantine_ratio = 0.05

[split]
validation_fraction = 0.02

[[sources]]
name = "astro_qa"
adapter = "astro_qa"
path = "Astro-QA/data"
category = "astronomy"
lang = "auto"
opencc = "t2s"
max_quarantine_ratio = 0.2    # small at small N: a few malformed rows are a large share
[sources.holdout]
fraction = 0.1
stratify = ["type", "subfield"]
[sources.templates]
file = "{templates}"
variants = {{ single_choice_4 = 4, single_choice_5 = 4, multi_select = 4, judgment = 4, subjective = 4 }}

[[sources]]
name = "gsm8k"
adapter = "gsm8k"
path = "grade-school-math/grade_school_math/data/train.jsonl"
category = "math"
lang = "en"

[[sources]]
name = "identity"
adapter = "identity"
path = "LLaMA-Factory/data/identity.json"
category = "self_cognition"
lang = "auto"
opencc = "t2s"
validation_fraction = 0.0

[[sources]]
name = "alpaca_zh"
adapter = "alpaca"
path = "LLaMA-Factory/data/alpaca_zh_part*.json"
category = "general"
lang = "zh"
opencc = "t2s"

[[sources]]
name = "alpaca_en"
adapter = "alpaca"
path = "LLaMA-Factory/data/alpaca_en_part*.json"
category = "general"
lang = "en"

[mix]
anchor = "general"

[mix.categories.general]
share = 0.7

[mix.categories.astronomy]
share = 0.15
max_copies = 3

[mix.categories.math]
share = 0.12
max_copies = 3

[mix.categories.self_cognition]
share = 0.03
max_copies = 40

[near_dedup]
threshold = 0.8
exclude_sources = ["identity"]

[decontaminate]
threshold = 0.5

[[decontaminate.eval_sets]]
name = "gsm8k_test"
path = "grade-school-math/grade_school_math/data/test.jsonl"
question = "question"
answer = "answer"
"""


def core_recipe_text(seed: int) -> str:
    terms = (ROOT / "corpus" / "protected_terms.txt").as_posix()
    return f"""# The core chain shared with the naive and datatrove peers: normalize + OpenCC, validate, exact dedup,
# split, mix, write. No near-dedup, decontamination or templates.
[corpus]
name = "bench-core"
seed = {seed}

[normalize]
protected_terms = "{terms}"

[quality]
max_quarantine_ratio = 0.05

[split]
validation_fraction = 0.02

[[sources]]
name = "core"
adapter = "alpaca"
path = "core/part-*.jsonl"
category = "general"
lang = "auto"
opencc = "t2s"
[sources.options]
strip_io_prefixes = false   # the peers do not strip them either

[mix]
anchor = "general"

[mix.categories.general]
share = 1.0
"""


def _check_recipes(folder: Path) -> None:
    """Both recipes load (schema, paths): a generator change that breaks them fails here, not in a build."""
    from stellar_data.recipe import load_recipe

    for name in ("recipe.toml", "core.toml"):
        load_recipe(folder / name)


def build_sources(n: int, seed: int, folder: Path) -> dict[str, int]:
    """Write every file into `folder` (which must exist and be empty); returns counts per source."""
    sizes = Sizes.for_total(n)
    rng = np.random.default_rng(seed)
    # One sentence pool per domain: Astro-QA questions, GSM8K problems and Alpaca texts share no
    # sentences, as in the real sources, so decontamination only finds the planted overlaps.
    zh, en = TextMaker("zh", rng), TextMaker("en", rng)
    astro_zh, astro_en, math_en = TextMaker("zh", rng, 20_000), TextMaker("en", rng, 20_000), TextMaker("en", rng)
    astro = astro_sources(rng, astro_zh, astro_en, sizes.astro_items, folder / "Astro-QA" / "data")
    gsm8k, gsm8k_test = gsm8k_sources(rng, math_en, sizes.gsm8k)
    identity = identity_records(rng, zh, en, sizes.identity)
    alpaca = {"zh": alpaca_records(rng, zh, sizes.alpaca_zh), "en": alpaca_records(rng, en, sizes.alpaca_en)}

    math_dir = folder / "grade-school-math" / "grade_school_math" / "data"
    write_jsonl(math_dir / "train.jsonl", gsm8k)
    write_jsonl(math_dir / "test.jsonl", gsm8k_test)
    factory = folder / "LLaMA-Factory" / "data"
    write_json_array(factory / "identity.json", identity)
    for lang, records in alpaca.items():
        for index, part in enumerate(chunks(records, ALPACA_FILES)):
            write_json_array(factory / f"alpaca_{lang}_part{index}.json", part)

    core = astro + [_as_alpaca(r) for r in gsm8k] + identity + alpaca["zh"] + alpaca["en"]
    for index, part in enumerate(chunks(core, CORE_FILES)):
        write_jsonl(folder / "core" / f"part-{index}.jsonl", part)
    (folder / "recipe.toml").write_text(recipe_text(seed), encoding="utf-8")
    (folder / "core.toml").write_text(core_recipe_text(seed), encoding="utf-8")
    _check_recipes(folder)
    return {"astro_qa": 2 * sizes.astro_items, "gsm8k": len(gsm8k), "identity": len(identity),
            "alpaca_zh": len(alpaca["zh"]), "alpaca_en": len(alpaca["en"]), "core": len(core)}  # fmt: skip


def _as_alpaca(record: Record) -> Record:
    """A GSM8K record in alpaca shape; a broken line stays broken, a missing answer stays missing."""
    if isinstance(record, Broken):
        return Broken(_as_alpaca(record.record))  # type: ignore[arg-type]
    renamed = {"instruction": record["question"], "input": ""}
    if "answer" in record:
        renamed["output"] = record["answer"]
    return renamed


def default_folder(n: int, seed: int) -> Path:
    return ROOT / "build" / "bench" / "data" / f"n{n}-s{seed}"


def generate(n: int, seed: int, folder: Path | None = None, *, force: bool = False) -> Path:
    """Generate (or reuse) the sources for (n, seed); returns the folder."""
    folder = folder or default_folder(n, seed)
    wanted = {"version": VERSION, "records": n, "seed": seed}
    stamp = folder / STAMP
    if not force and stamp.is_file():
        found = json.loads(stamp.read_text(encoding="utf-8"))
        if {k: found.get(k) for k in wanted} == wanted:
            return folder
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    counts = build_sources(n, seed, staging)
    (staging / STAMP).write_text(json.dumps({**wanted, "counts": counts}, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, required=True, help="records in all across the sources")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="folder (default build/bench/data/n<N>-s<seed>)")
    parser.add_argument("--force", action="store_true", help="regenerate even when cached")
    args = parser.parse_args(argv)
    print(generate(args.records, args.seed, args.out, force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
