"""Contamination guard: did the adapter's training data contain the items it is evaluated on?

The adapter's run record (train_config.json) names its data (`config.data`) and the hash of the
corpus manifest at training time. Checks, against that folder as it is now:

- held-out groups: every Astro-QA eval item's group must be among the corpus's own held-out
  groups (`astro_qa_heldout`); a group that is not was not held out by that build, so the eval set
  and the corpus disagree on the benchmark split;
- train overlap by group: an eval item whose group appears in the train split;
- train overlap by question text: after normalization (NFKC, lower case, every character that is
  not a letter or digit removed), one train record holds the whole item: its instruction + input
  contain the question and, for choice items, each option text (of at least MIN_OPTION_CHARS, in any
  order); for subjective items its output also contains the first REFERENCE_CHARS of the reference.
  A question alone is not enough: generic stems (`Which of the following statements is
  incorrect?`) and terms (`second cosmic velocity`) recur across different items. Judgment items
  are their statement, so the statement alone decides.

Data that is not a built corpus (a `datasets` folder) gets the question-text check only. A missing
folder, or an adapter without a run record, means the check could not be done: that is said as
loudly as a hit.

Which folder: the run record's `resolved.data` when it exists (an absolute path recorded at training,
or by merge for a merged checkpoint), else `config.data` as written, which may be relative to the
working directory training ran in: it is tried from this one (training's is not recorded).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ..data import corpus_manifest_sha256, is_corpus, load_records
from .items import EvalItem

MIN_OPTION_CHARS = 2
REFERENCE_CHARS = 32
EXAMPLES = 10


def normalized(texts: pl.Expr) -> pl.Expr:
    return texts.str.normalize("NFKC").str.to_lowercase().str.replace_all(r"[\W_]+", "")


def normalize(texts: Sequence[str]) -> list[str]:
    return pl.Series(list(texts), dtype=pl.String).to_frame("t").select(normalized(pl.col("t")))["t"].to_list()


def _probes(items: Sequence[EvalItem]) -> dict[str, tuple[list[str], list[str]]]:
    """item id -> (fragments the train text must contain, fragments its output must contain)."""
    questions = normalize([i.question for i in items])
    probes = {}
    for item, question in zip(items, questions, strict=True):
        if not question:
            continue
        in_text, in_output = [question], []
        if item.options:
            in_text += [o for o in normalize([text for _, text in item.options]) if len(o) >= MIN_OPTION_CHARS]
        elif item.kind == "subjective":
            reference = normalize([item.answer])[0][:REFERENCE_CHARS]
            if reference:
                in_output.append(reference)
        probes[item.id] = (in_text, in_output)
    return probes


def _hits(frame: pl.DataFrame, column: str, patterns: set[str]) -> dict[str, set[int]]:
    """pattern -> the row numbers whose `column` contains it."""
    if not patterns:
        return {}
    found = (
        frame.select(
            pl.int_range(pl.len()).alias("row"), pl.col(column).str.extract_many(sorted(patterns), overlapping=True)
        )
        .explode(column)
        .drop_nulls(column)
        .unique()
    )
    hits: dict[str, set[int]] = {}
    for row, pattern in found.iter_rows():
        hits.setdefault(pattern, set()).add(row)
    return hits


def question_overlap(items: Sequence[EvalItem], train: pl.DataFrame) -> set[str]:
    """Ids of the items whose question (see the module docstring) is in a train record.
    `train`: instruction, input, output columns."""
    probes = _probes(items)
    frame = train.select(
        normalized(pl.concat_str("instruction", "input", separator="\n")).alias("text"),
        normalized(pl.col("output")).alias("output"),
    )
    text_hits = _hits(frame, "text", {f for text, _ in probes.values() for f in text})
    output_hits = _hits(frame, "output", {f for _, output in probes.values() for f in output})
    overlapping = set()
    for item_id, (in_text, in_output) in probes.items():
        rows = set.intersection(*(text_hits.get(f, set()) for f in in_text))
        for fragment in in_output:
            rows &= output_hits.get(fragment, set())
        if rows:
            overlapping.add(item_id)
    return overlapping


def check_contamination(items: Sequence[EvalItem], run: dict, adapter: str | None) -> dict:
    """The `contamination` section of the report; `warnings` holds what must be shown loudly."""
    if not adapter:
        return {"checked": False, "reason": "no adapter: the base model's training data is unknown", "warnings": []}
    data = run.get("config", {}).get("data")
    if not data:
        reason = f"contamination check could not be done: no train_config.json naming the data beside {adapter}"
        return {"checked": False, "reason": reason, "warnings": [reason]}
    folder = training_data(run)
    if folder is None:
        reason = f"contamination check could not be done: the training data folder {data} is missing"
        if not Path(data).is_absolute():
            reason += f" (a relative path: tried from {Path.cwd()}; the working directory of training is unknown)"
        return {"checked": False, "data": data, "reason": reason, "warnings": [reason]}
    data = str(folder)
    report: dict = {"checked": False, "data": data, "warnings": []}
    warnings: list[str] = report["warnings"]
    if is_corpus(data):
        recorded, current = run.get("corpus_manifest_sha256"), corpus_manifest_sha256(data)
        report["corpus_manifest_sha256"] = {"recorded": recorded, "current": current}
        if recorded and recorded != current:
            warnings.append(
                f"the corpus at {data} changed since training (manifest hash differs): checked as it is now"
            )
        train, heldout = _corpus_tables(folder)
        astro_groups = {i.group for i in items if i.source == "astro_qa"}
        missing = sorted(astro_groups - heldout)
        report["heldout_groups_not_in_corpus"] = {"count": len(missing), "examples": missing[:EXAMPLES]}
        if missing:
            warnings.append(
                f"{len(missing)} of {len(astro_groups)} Astro-QA eval groups are not held out by the training corpus"
                f" {data} (its held-out split differs from this eval set), e.g. {', '.join(missing[:3])}"
            )
        train_groups = set(train["group"].unique().to_list())
        by_group = {i.id for i in items if i.group in train_groups}
    else:
        records = load_records(data, "train")
        if records is None:
            reason = f"contamination check could not be done: {data} has no train split"
            return report | {"reason": reason, "warnings": [reason]}
        train = pl.DataFrame(records, schema=dict.fromkeys(("instruction", "input", "output"), pl.String))
        by_group = set()
    by_question = question_overlap(items, train)
    overlap = [
        {"id": i.id, "by": [name for name, ids in (("group", by_group), ("question", by_question)) if i.id in ids]}
        for i in items
        if i.id in by_group or i.id in by_question
    ]
    report["train_overlap"] = {
        "count": len(overlap), "by_group": len(by_group), "by_question": len(by_question), "items": overlap,
    }  # fmt: skip
    if overlap:
        warnings.append(
            f"CONTAMINATED: {len(overlap)} of {len(items)} eval items are in the train split of {data}"
            f" ({len(by_group)} by group, {len(by_question)} by question text), e.g."
            f" {', '.join(o['id'] for o in overlap[:3])}"
        )
    report["checked"] = True
    return report


def training_data(run: dict) -> Path | None:
    """The run's training data folder as it exists here (see the module docstring); None if missing."""
    resolved = run.get("resolved")
    candidates = [resolved.get("data") if isinstance(resolved, dict) else None, run.get("config", {}).get("data")]
    return next((Path(c) for c in candidates if isinstance(c, str) and c and Path(c).exists()), None)


def _corpus_tables(folder: Path) -> tuple[pl.DataFrame, set[str]]:
    """The train split's text columns and group, and the corpus's held-out groups."""
    import stellar_data

    corpus = stellar_data.load(folder)
    train = corpus.frame_of("train").select("group", "instruction", "input", "output").collect()
    try:
        heldout = set(corpus.table_of("astro_qa_heldout").select("group").collect()["group"].to_list())
    except KeyError:
        heldout = set()
    return train, heldout
