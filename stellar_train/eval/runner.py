"""The evaluation run: items -> contamination guard -> each model scores the items it has not scored
yet (resumable) -> tables, JSON, chart, console.

Resuming: every scored item is appended at once to `<out>/scored.jsonl`, keyed by the model's tag
(`base` / `adapter` plus a hash of what decides the scores: the base's and the adapter's
fingerprints, the template, the mode, max_new_tokens). A rerun with the same settings skips the
items already there; the final JSON is computed from that file in item order, so an interrupted
and resumed run writes the same `eval.json` as an uninterrupted one. Other settings' rows stay in
the file and are ignored.

Comparison (`compare=True`): the base, then the base with the adapter, both under the adapter's
template (its run record; `template` overrides), so the difference is the adapter's alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..model import base_fingerprint
from ..prompt import PromptTemplate
from ..run_record import read_run_config
from . import formats
from .chart import write_chart
from .generate import generate_batch, prediction_from_text
from .grading import grade
from .guard import check_contamination
from .items import EvalDataError, EvalItem, detect_format, load_items
from .likelihood import continuation_logprobs, decide, requests
from .tables import CI_METHOD, Scored, render, summarize

MODES = ("likelihood", "generate")
RESULTS_FILE, REPORT_FILE, CHART_FILE = "scored.jsonl", "eval.json", "eval.png"
SCORER_VERSION = 1
"""Part of every model tag: bump it when a change to prompts or scoring changes item scores."""
OBJECTIVE_METHOD = {
    "likelihood": "mean log-probability per token of each option's answer text after the plain question in the"
    " training template (`C. option text`; verdicts for judgments; multi-select: each option judged true/false)",
    "generate": "greedy generation asked for `答案是：X` / `The answer is X`, read by scoring.parse_choice",
}


@dataclass(frozen=True)
class EvalSettings:
    model_path: str
    eval_path: str
    adapter: str | None = None
    eval_format: str | None = None
    """astro-qa, mc-csv or jsonl; None: from the path (.csv, .jsonl / .json, else astro-qa)."""
    mapping: dict[str, str] = field(default_factory=dict)
    out: Path | None = None
    limit: int | None = None
    """At most this many items, taken in turn from each type (a small limit still covers every type)."""
    batch_size: int = 8
    compare: bool = False
    template: str | None = None
    mode: str = "likelihood"
    max_new_tokens: int = 256
    types: tuple[str, ...] = ()
    """Only these types (`single_choice_4`, or a family: `single_choice`); empty: all."""

    def validate(self) -> None:
        if self.mode not in MODES:
            raise EvalDataError(f"--mode {self.mode!r}: use {' or '.join(MODES)}")
        if self.batch_size < 1 or self.max_new_tokens < 1 or (self.limit is not None and self.limit < 1):
            raise EvalDataError("--batch-size, --max-new-tokens and --limit must be at least 1")
        if self.compare and not self.adapter:
            raise EvalDataError("--compare needs --adapter (it scores the base, then the base with the adapter)")


def select(items: Sequence[EvalItem], types: Sequence[str], limit: int | None) -> list[EvalItem]:
    chosen = [i for i in items if not types or i.type in types or i.kind in types]
    if limit is None or limit >= len(chosen):
        return chosen
    by_type: dict[str, list[EvalItem]] = {}
    for item in chosen:
        by_type.setdefault(item.type, []).append(item)
    picked: set[str] = set()
    queues = [iter(by_type[t]) for t in sorted(by_type)]
    while len(picked) < limit:
        for queue in queues:
            item = next(queue, None)
            if item is not None and len(picked) < limit:
                picked.add(item.id)
    return [i for i in chosen if i.id in picked]


def training_run(model_path: str, adapter: str | None) -> tuple[dict, str | None]:
    """The run record that describes the evaluated weights: the adapter's, or for a merged
    checkpoint (merge_info.json) the merged adapter's, with the paths merge resolved (`resolved`;
    the run record's own win). Returns (record, adapter path)."""
    if adapter:
        return read_run_config(adapter), adapter
    path = Path(model_path) / "merge_info.json"
    if not path.is_file():
        return {}, None
    info = json.loads(path.read_text(encoding="utf-8"))
    merged, record = info.get("adapter"), info.get("run_record")
    if record and Path(record).is_file():
        run = json.loads(Path(record).read_text(encoding="utf-8"))
    else:  # merged before merge_info named the run record, or it moved: look beside the adapter
        run = read_run_config(merged) if merged else {}
    resolved = info.get("resolved")
    if run and isinstance(resolved, dict):
        own = run.get("resolved")
        run = run | {"resolved": resolved | (own if isinstance(own, dict) else {})}
    return run, merged


def resolve_template(override: str | None, run: dict) -> PromptTemplate:
    if override:
        return PromptTemplate.load(override)
    saved = run.get("template")
    if isinstance(saved, dict) and set(saved) >= {"name", "prompt_no_input"}:
        return PromptTemplate(**{f.name: saved[f.name] for f in dataclasses.fields(PromptTemplate)})
    return PromptTemplate.load(run.get("config", {}).get("template", "stellarspeak"))


def adapter_fingerprint(adapter: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(adapter).glob("adapter_*")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def model_tag(label: str, settings: EvalSettings, adapter: str | None, template: PromptTemplate) -> str:
    decided_by = {
        "base": base_fingerprint(settings.model_path),
        "adapter": adapter_fingerprint(adapter) if adapter else None,
        "template": dataclasses.asdict(template),
        "mode": settings.mode,
        "max_new_tokens": settings.max_new_tokens,
        "scorer": SCORER_VERSION,
    }
    return f"{label}:{hashlib.sha256(json.dumps(decided_by, sort_keys=True).encode()).hexdigest()[:16]}"


_ROW_KEYS = ("tag", "id", "score", "max_score")


class ResultStore:
    """Scored items, appended one JSON line each (in memory only without an output folder)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: dict[tuple[str, str], dict] = {}
        self._cut = False  # the file ends inside a line: the next row starts on a new one
        if path is not None and path.is_file():
            text = path.read_text(encoding="utf-8")
            self._cut = bool(text) and not text.endswith("\n")
            lines = text.splitlines()
            for number, line in enumerate(lines, 1):
                try:
                    row = json.loads(line)
                    if not all(key in row for key in _ROW_KEYS):
                        raise KeyError
                except (json.JSONDecodeError, KeyError, TypeError):
                    if self._cut and number == len(lines):
                        continue  # the last line, cut short by an interrupted run: that item is scored again
                    raise EvalDataError(f"{path}: line {number} is not a scored item; remove it or the file") from None
                self.rows[(row["tag"], row["id"])] = row

    def add(self, row: dict) -> None:
        self.rows[(row["tag"], row["id"])] = row
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(("\n" if self._cut else "") + json.dumps(row, ensure_ascii=False) + "\n")
            self._cut = False

    def done(self, tag: str, item_id: str) -> bool:
        return (tag, item_id) in self.rows


def score_items(
    model,
    tokenizer,
    items: Sequence[EvalItem],
    template: PromptTemplate,
    settings: EvalSettings,
    emit: Callable[[EvalItem, str, dict], None],
) -> None:
    """Predict every item, `batch_size` items at a time, calling `emit(item, prediction, details)`
    after each batch; objective items by likelihood (unless mode is generate), the rest generated."""
    by_likelihood = [i for i in items if settings.mode == "likelihood" and i.kind != "subjective"]
    generated = [i for i in items if i.kind == "subjective" or settings.mode == "generate"]
    step = settings.batch_size
    for start in range(0, len(by_likelihood), step):
        batch = by_likelihood[start : start + step]
        spans, pairs = [], []
        for item in batch:
            asked = requests(item, template)
            spans.append((len(pairs), len(asked)))
            pairs += asked
        scores = continuation_logprobs(model, tokenizer, pairs, step)
        for item, (begin, count) in zip(batch, spans, strict=True):
            emit(item, *decide(item, scores[begin : begin + count]))
    for start in range(0, len(generated), step):
        batch = generated[start : start + step]
        prompts = [formats.generation_prompt(i, template) for i in batch]
        for item, text in zip(batch, generate_batch(model, tokenizer, prompts, settings.max_new_tokens), strict=True):
            emit(item, prediction_from_text(item, text), {} if item.kind == "subjective" else {"generated": text})


def load_model(model_path: str):
    import torch

    from ..model import load_base

    cuda = torch.cuda.is_available()
    model = load_base(model_path, "bf16" if cuda else "fp32")
    return (model.to("cuda") if cuda else model).eval()


def evaluate(settings: EvalSettings, console) -> dict:
    """Run the evaluation; prints warnings, progress and tables to `console`; returns the report."""
    from rich.panel import Panel

    settings.validate()
    fmt = settings.eval_format or detect_format(settings.eval_path)
    items = select(load_items(settings.eval_path, fmt, settings.mapping), settings.types, settings.limit)
    if not items:
        raise EvalDataError(f"{settings.eval_path}: no items of type(s) {', '.join(settings.types)}")
    run, trained_adapter = training_run(settings.model_path, settings.adapter)
    template = resolve_template(settings.template, run)
    contamination = check_contamination(items, run, trained_adapter)
    for warning in contamination["warnings"]:
        console.print(Panel(warning, title="contamination guard", border_style="bold red"), style="bold red")

    plan = [("base", None), ("adapter", settings.adapter)] if settings.compare else [
        ("adapter" if settings.adapter else "base", settings.adapter)
    ]  # fmt: skip
    tags = {label: model_tag(label, settings, adapter, template) for label, adapter in plan}
    store = ResultStore(settings.out / RESULTS_FILE if settings.out else None)
    score_missing(settings, plan, tags, items, template, store, console)

    results = {label: {i.id: Scored(**_score(store.rows[(tags[label], i.id)])) for i in items} for label, _ in plan}
    tables = summarize(items, results)
    report = {
        "eval": {"path": settings.eval_path, "format": fmt, "items": len(items),
                 "types": {t: sum(i.type == t for i in items) for t in sorted({i.type for i in items})}},
        "settings": {"mode": settings.mode, "template": template.name, "max_new_tokens": settings.max_new_tokens,
                     "limit": settings.limit, "types": list(settings.types)},
        "method": {"objective": OBJECTIVE_METHOD[settings.mode],
                   "subjective": "greedy generation, scored by Astro-QA's BLEU-1/ROUGE/chrF formula",
                   "score": "per item score / max score (multi-select max 2), so every mean is 0-1",
                   "ci": CI_METHOD},
        "models": {label: {"model_path": settings.model_path, "adapter": adapter, "tag": tags[label]}
                   for label, adapter in plan},
        "contamination": contamination,
        "tables": tables,
    }  # fmt: skip
    labels = [label for label, _ in plan]
    render(tables, labels, console)
    if settings.out:
        _write_json(settings.out / REPORT_FILE, report)
        write_chart(
            tables, labels, settings.out / CHART_FILE, title=f"{Path(settings.eval_path).name} ({settings.mode})"
        )
        console.print(f"wrote {settings.out / REPORT_FILE}, {settings.out / CHART_FILE}, {settings.out / RESULTS_FILE}")
    return report


def _score(row: dict) -> dict[str, float]:
    return {"score": row["score"], "max_score": row["max_score"]}


def score_missing(
    settings: EvalSettings,
    plan: Sequence[tuple[str, str | None]],
    tags: dict[str, str],
    items: Sequence[EvalItem],
    template: PromptTemplate,
    store: ResultStore,
    console,
) -> None:
    """Score, model after model, the items the store lacks; nothing is loaded when none is missing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..model import load_tokenizer, tokenizer_source

    todo = {label: [i for i in items if not store.done(tags[label], i.id)] for label, _ in plan}
    for label, _ in plan:
        if len(todo[label]) < len(items):
            console.print(f"{label}: {len(items) - len(todo[label])} of {len(items)} items already scored (resuming)")
    if not any(todo.values()):
        return
    tokenizer = load_tokenizer(tokenizer_source(settings.model_path, settings.adapter))
    model = load_model(settings.model_path)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for label, adapter in plan:
            if adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter).eval()
            if not todo[label]:
                continue
            task = progress.add_task(f"{label} ({settings.mode})", total=len(todo[label]))

            def emit(item: EvalItem, prediction: str, details: dict, tag: str = tags[label], task=task) -> None:
                graded = grade(item, prediction)
                store.add({
                    "tag": tag, "id": item.id, "type": item.type, "prediction": prediction,
                    "score": graded.score, "max_score": graded.max_score, "details": details | graded.details,
                })  # fmt: skip
                progress.advance(task)

            score_items(model, tokenizer, todo[label], template, settings, emit)


def _write_json(path: Path, data: dict) -> None:
    """Atomic: a half-written report never replaces the previous one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".json.tmp")
    staging.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)
