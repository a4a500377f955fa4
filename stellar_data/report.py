"""report.html: one self-contained page that shows a built corpus to a human.

Sections: header (recipe, seed, sizes), category mix before / after mixing, length distributions
per category (characters; tokens when a tokenizer is given), quarantine reasons, duplicate rates
per source, and the Astro-QA breakdown by question type and language.

The page fetches nothing: styles are inline and the charts (matplotlib's Agg canvas, never pyplot's
global state) are PNGs embedded as base64 data: URIs. It is a function of the manifest, the train
shards and the tokenizer only: no timestamps or durations, PNGs without the `Software` tag at a
fixed dpi, everything in a fixed order; two builds of the same inputs write byte-identical reports.

Chart labels are ASCII (categories, sources, rules, types, languages): the default matplotlib font
has no CJK glyphs, so Chinese text (Astro-QA subfields) appears only in the HTML tables.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from .corpus import load
from .errors import CorpusDirError, StellarDataError
from .hashing import file_sha256
from .writers.manifest import write_manifest

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from tokenizers import Tokenizer

REPORT_NAME = "report.html"
DPI = 100
TOKEN_CUTOFFS = (256, 512)
"""Training cutoffs worth knowing about: the share of records longer than each is reported."""
TOKENIZE_BATCH = 4096

BLUE_LIGHT, BLUE, RED, GREY, BLACK = "#9ab8d8", "#2f5d8c", "#c0392b", "#9aa5a8", "#222222"
LANG_COLORS = ("#2f5d8c", "#e08e2b", "#4f9a5a", "#8e5ea2")
"""Languages in sorted order (en, zh, ...); validation / held-out bars use the same hue, hatched."""


# --- data: plain values computed from the manifest and the train shards -----------------------


@dataclass(frozen=True)
class CategoryMix:
    category: str
    before: int
    """Train records before mixing (after template expansion)."""
    after: int
    """Train records written."""
    plan: dict[str, Any] | None
    """The manifest's `mix.categories` entry, None without a [mix] section."""


@dataclass(frozen=True)
class Lengths:
    """Per category (sorted): the length of instruction+input (`prompt`) and of output, one value per train record."""

    unit: str
    prompt: dict[str, np.ndarray]
    output: dict[str, np.ndarray]


@dataclass(frozen=True)
class RuleCount:
    rule: str
    quarantined: int
    deliberate: int
    """Excluded on purpose (no answer key, duplicates, ...): not counted toward the quarantine limit."""


def category_mix(manifest: dict[str, Any]) -> list[CategoryMix]:
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    for source in manifest["sources"].values():
        category = source["category"]
        before[category] = before.get(category, 0) + source["counts"]["mix"]["before"]
        after[category] = after.get(category, 0) + source["counts"]["records"]["train"]
    plans = (manifest.get("mix") or {}).get("categories", {})
    return [
        CategoryMix(category, before.get(category, 0), after.get(category, 0), plans.get(category))
        for category in sorted(set(before) | set(plans))
    ]


def read_train(corpus_dir: Path, manifest: dict[str, Any]) -> pl.DataFrame:
    """category, instruction, input and output of each train record."""
    paths = [corpus_dir / shard for shard in manifest["splits"].get("train", {}).get("shards", [])]
    for path in paths:
        if not path.is_file():
            raise CorpusDirError(f"{corpus_dir}: train shard {path.relative_to(corpus_dir).as_posix()} is missing")
    if not paths:
        return pl.DataFrame(schema=dict.fromkeys(TRAIN_COLUMNS, pl.String))
    return pl.read_parquet([str(p) for p in paths], columns=list(TRAIN_COLUMNS))


TRAIN_COLUMNS = ("category", "instruction", "input", "output")

# The prompt is the instruction, and the input after a newline if any.
_PROMPT = (
    pl.when(pl.col("input") == "")
    .then(pl.col("instruction"))
    .otherwise(pl.concat_str("instruction", pl.lit("\n"), "input"))
    .alias("prompt")
)


def char_counts(records: pl.DataFrame) -> pl.DataFrame:
    """category, and the characters of the prompt and of the output of each record; counted from
    the columns, since building the prompt texts would copy them."""
    input_chars = pl.when(pl.col("input") == "").then(0).otherwise(pl.col("input").str.len_chars() + 1)
    return records.select(
        "category",
        (pl.col("instruction").str.len_chars() + input_chars).alias("prompt"),
        pl.col("output").str.len_chars(),
    )


def token_lengths(train: pl.DataFrame, tokenizer: Tokenizer) -> Lengths:
    prompts = train.select(_PROMPT).to_series()
    counted = train.select(
        "category", _count_tokens(tokenizer, prompts).alias("prompt"), _count_tokens(tokenizer, train["output"])
    )
    return _by_category("tokens", counted)


def _count_tokens(tokenizer: Tokenizer, texts: pl.Series) -> pl.Series:
    """Tokens per text; each distinct text is encoded once (copies and template variants repeat texts)."""
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # _fast (no offsets) since 0.20
    unique = texts.unique(maintain_order=True)
    counts: list[int] = []
    for start in range(0, len(unique), TOKENIZE_BATCH):
        batch = unique.slice(start, TOKENIZE_BATCH).to_list()
        counts += [len(e.ids) for e in encode(batch, add_special_tokens=False)]
    return texts.replace_strict(unique, pl.Series(counts, dtype=pl.Int64), return_dtype=pl.Int64)


def _by_category(unit: str, counted: pl.DataFrame) -> Lengths:
    prompt, output = {}, {}
    for (category,), part in sorted(counted.partition_by("category", as_dict=True).items()):
        prompt[category] = part["prompt"].to_numpy()
        output[category] = part["output"].to_numpy()
    return Lengths(unit, prompt, output)


def load_tokenizer(path: Path) -> Tokenizer:
    """A `tokenizers` tokenizer from a tokenizer.json file or a folder holding one."""
    from tokenizers import Tokenizer

    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        where = "no tokenizer.json in the folder" if path.is_dir() else "no such file"
        raise StellarDataError(f"tokenizer {path}: {where}")
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable or malformed JSON
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StellarDataError(f"tokenizer {path}: not a tokenizers JSON file ({reason})") from None


def quarantine_rules(manifest: dict[str, Any]) -> list[RuleCount]:
    """quarantine.by_rule split by kind; what the sources do not count as quarantined was deliberate."""
    quarantined: dict[str, int] = {}
    for source in manifest["sources"].values():
        for rule, n in source["counts"]["quarantined"].items():
            quarantined[rule] = quarantined.get(rule, 0) + n
    rows = [
        RuleCount(rule, quarantined.get(rule, 0), total - quarantined.get(rule, 0))
        for rule, total in manifest["quarantine"]["by_rule"].items()
    ]
    return sorted(rows, key=lambda r: (-(r.quarantined + r.deliberate), r.rule))


def percentile(values: np.ndarray, q: float) -> int:
    return int(np.percentile(values, q)) if len(values) else 0


# --- charts: each returns a base64 PNG ---------------------------------------------------------


def _figure(width: float, height: float, panels: int = 1) -> tuple[Figure, list[Any]]:
    # matplotlib is imported here, not with the module: it costs 0.3 s, and the build's worker
    # processes import this package but never draw.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    return figure, list(axes)


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _thousands(axis: Any) -> None:
    from matplotlib.ticker import StrMethodFormatter

    axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def mix_chart(rows: Sequence[CategoryMix], mixed: bool) -> str:
    """Train records per category before and after mixing, with the target as a black tick."""
    figure, (ax,) = _figure(8, 4.2)
    x = np.arange(len(rows))
    width = 0.38 if mixed else 0.6
    offset = width / 2 if mixed else 0.0
    bars = ax.bar(
        x - offset, [r.before for r in rows], width, color=BLUE_LIGHT, label="before mixing" if mixed else "train"
    )
    ax.bar_label(bars, labels=[f"{r.before:,}" for r in rows], fontsize=8, padding=2)
    if mixed:
        bars = ax.bar(x + offset, [r.after for r in rows], width, color=BLUE, label="after mixing")
        ax.bar_label(bars, labels=[f"{r.after:,}" for r in rows], fontsize=8, padding=2)
        targeted = [(i, r.plan["target"]) for i, r in enumerate(rows) if r.plan and not r.plan.get("skipped")]
        ax.scatter(
            [i + offset for i, _ in targeted],
            [t for _, t in targeted],
            marker="_",
            s=900,
            linewidths=2,
            color=BLACK,
            zorder=3,
            label="target",
        )
    ax.set_xticks(x, [r.category for r in rows])
    ax.set_ylabel("train records")
    ax.set_title("Train records per category" + (" before and after mixing" if mixed else " (no mix)"))
    _thousands(ax.yaxis)
    ax.margins(y=0.12)
    ax.legend(frameon=False)
    return _png(figure)


def length_chart(lengths: Lengths) -> str:
    """Box plots per category (whiskers at the 1st and 99th percentiles), log y."""
    categories = list(lengths.prompt)
    figure, axes = _figure(max(8.0, 1.6 * len(categories) + 2), 4.4, panels=2)
    for ax, (title, values) in zip(
        axes, (("instruction + input", lengths.prompt), ("output", lengths.output)), strict=True
    ):
        ax.boxplot(
            [np.maximum(values[c], 1) for c in categories],
            whis=(1, 99),
            widths=0.6,
            flierprops={"marker": ".", "markersize": 2, "alpha": 0.3},
            medianprops={"color": RED, "linewidth": 1.5},
        )
        ax.set_yscale("log")
        _thousands(ax.yaxis)
        ax.set_xticks(range(1, len(categories) + 1), categories, rotation=20 if len(categories) > 4 else 0)
        ax.set_title(f"{title} ({lengths.unit})")
        ax.set_ylabel(f"{lengths.unit} per record (log scale)")
        ax.grid(axis="y", which="major", alpha=0.3)
    return _png(figure)


def quarantine_chart(rows: Sequence[RuleCount]) -> str:
    """Rejected items per rule: quarantined (counts toward the limit) stacked with deliberate exclusions."""
    figure, (ax,) = _figure(8, 0.35 * len(rows) + 1.6)
    y = np.arange(len(rows))
    ax.barh(y, [r.quarantined for r in rows], color=RED, label="quarantined (counts toward the limit)")
    ax.barh(
        y, [r.deliberate for r in rows], left=[r.quarantined for r in rows], color=GREY, label="deliberate (excluded)"
    )
    for i, r in enumerate(rows):
        ax.annotate(f" {r.quarantined + r.deliberate:,}", (r.quarantined + r.deliberate, i), va="center", fontsize=8)
    ax.set_yticks(y, [r.rule for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("items")
    ax.set_title("Rejected items by rule")
    _thousands(ax.xaxis)
    ax.margins(x=0.12)
    ax.legend(frameon=False, loc="lower right")
    return _png(figure)


def duplicate_chart(sources: Sequence[tuple[str, int, int]]) -> str:
    """Exact duplicates dropped per source, as a share of its valid items."""
    figure, (ax,) = _figure(8, 0.4 * len(sources) + 1.4)
    y = np.arange(len(sources))
    rates = [100 * dup / valid if valid else 0.0 for _, dup, valid in sources]
    ax.barh(y, rates, color=GREY)
    for i, ((_, dup, valid), rate) in enumerate(zip(sources, rates, strict=True)):
        ax.annotate(f" {dup:,} / {valid:,} ({rate:.2f}%)", (rate, i), va="center", fontsize=8)
    ax.set_yticks(y, [name for name, _, _ in sources])
    ax.invert_yaxis()
    ax.set_xlabel("duplicates / valid items (%)")
    ax.set_title("Exact duplicates per source (recipe order: earlier sources keep the record)")
    ax.set_xlim(0, max([*rates, 1.0]) * 1.45)
    return _png(figure)


def type_lang_chart(counts: dict[tuple[str, str, str], int], title: str, ylabel: str) -> str:
    """Bars per (type, language); a second `kind` (e.g. validation) is stacked on the first, hatched."""
    types = sorted({t for t, _, _ in counts})
    langs = sorted({lang for _, lang, _ in counts})
    kinds = sorted({k for _, _, k in counts}, key=lambda k: (k != "train", k))
    figure, (ax,) = _figure(9, 4.2)
    x = np.arange(len(types))
    width = 0.8 / max(len(langs), 1)
    for j, lang in enumerate(langs):
        color = LANG_COLORS[j % len(LANG_COLORS)]
        bottom = np.zeros(len(types))
        for k, kind in enumerate(kinds):
            heights = np.array([counts.get((t, lang, kind), 0) for t in types])
            label = lang if len(kinds) == 1 else f"{lang} {kind}"
            ax.bar(
                x - 0.4 + width * (j + 0.5),
                heights,
                width,
                bottom=bottom,
                color=color,
                alpha=1.0 if k == 0 else 0.45,
                hatch=None if k == 0 else "//",
                edgecolor="white",
                label=label,
            )
            bottom += heights
        for xi, total in zip(x - 0.4 + width * (j + 0.5), bottom, strict=True):
            ax.annotate(f"{int(total):,}", (xi, total), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, types)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _thousands(ax.yaxis)
    ax.margins(y=0.12)
    ax.legend(frameon=False, fontsize=8)
    return _png(figure)


# --- HTML ---------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 0.8rem 0; }
.note { color: #555; } .warn { color: #9a5b00; } nav a { margin-right: 1rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; } dt { font-weight: 600; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(png: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{png}" alt="{_esc(alt)}">'


def _para(text: str, css: str = "note") -> str:
    return f'<p class="{css}">{_esc(text)}</p>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Cells that are numbers are right-aligned and written with thousands separators."""

    def cell(value: object) -> str:
        if isinstance(value, bool):
            return f"<td>{'yes' if value else 'no'}</td>"
        if isinstance(value, int):
            return f'<td class="n">{value:,}</td>'
        return f"<td>{_esc(value)}</td>"

    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>\n" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>"


def _section(anchor: str, title: str, parts: Iterable[str]) -> str:
    return f'<section id="{anchor}">\n<h2>{_esc(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def _share(value: float) -> str:
    return f"{100 * value:.1f}%"


def header_html(manifest: dict[str, Any]) -> str:
    splits = ", ".join(f"{name} {info['records']:,}" for name, info in sorted(manifest["splits"].items()))
    tables = ", ".join(f"{name} {info['records']:,}" for name, info in sorted(manifest["tables"].items()))
    facts = [
        ("recipe", manifest["recipe"]["path"]),
        ("recipe sha256", manifest["recipe"]["sha256"][:16]),
        ("seed", manifest["seed"]),
        ("splits (records)", splits),
        ("held-out tables (items)", tables or "none"),
        ("languages", ", ".join(manifest["languages"])),
        ("quarantine.parquet", f"{manifest['quarantine']['records']:,} rejected items"),
    ]
    rows = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts)
    warnings = "".join(_para(f"warning: {w}", "warn") for w in manifest["warnings"])
    return f"<h1>{_esc(manifest['corpus'])}</h1>\n{_para(manifest['description'])}\n<dl>{rows}</dl>\n{warnings}"


def _copies(plan: dict[str, Any]) -> str:
    """{times a record appears in train: records}, e.g. `2x 1,325 · 3x 5,975` (0x: dropped by downsampling)."""
    return " · ".join(f"{times}x {n:,}" for times, n in sorted(plan["copies"].items(), key=lambda kv: float(kv[0])))


def mix_html(manifest: dict[str, Any]) -> str:
    rows = category_mix(manifest)
    mixed = manifest.get("mix") is not None
    parts = [_img(mix_chart(rows, mixed), "train records per category before and after mixing")]
    if not mixed:
        parts.append(_para("The recipe has no [mix] section: train keeps every record, so there is no after."))
        parts.append(_table(("category", "train records"), [(r.category, r.before) for r in rows]))
        return _section("mix", "Category mix", parts)
    mix = manifest["mix"]
    anchor = f"anchor {mix['anchor']}" if mix.get("anchor") else f"total {mix['total']:,}"
    parts.append(
        _para(
            f"Train split only ({anchor}; validation is never mixed): target {mix['total_target']:,} records, "
            f"achieved {mix['total_achieved']:,}. Copies: how many times a record appears in train, and how many "
            "records do so (0x: dropped by downsampling). A capped category could not reach its target "
            "within max_copies."
        )
    )
    headers = ("category", "before", "target", "achieved", "target share", "achieved share", "max copies")
    table_rows = [
        (r.category, r.before, r.plan["target"], r.plan["achieved"], _share(r.plan["target_share"]),
         _share(r.plan["achieved_share"]), f"{r.plan['max_copies']:g}", _copies(r.plan),
         "skipped" if r.plan["skipped"] else ("capped" if r.plan["capped"] else "ok"))
        if r.plan
        else (r.category, r.before, "-", r.after, "-", "-", "-", "-", "not in [mix]")
        for r in rows
    ]  # fmt: skip
    parts.append(_table((*headers, "copies per record", "status"), table_rows))
    return _section("mix", "Category mix", parts)


def lengths_html(lengths: Lengths, what: str) -> list[str]:
    parts = [_img(length_chart(lengths), f"{lengths.unit} per record by category")]
    with_cutoffs = lengths.unit == "tokens"
    headers = ["category", "records"]
    for part in ("instruction+input", "output"):
        headers += [f"{part} median", f"{part} p90", f"{part} p99", f"{part} max"]
    if with_cutoffs:
        headers += [f"total > {cutoff}" for cutoff in TOKEN_CUTOFFS]
    rows = []
    for category, prompt in lengths.prompt.items():
        output = lengths.output[category]
        row: list[object] = [category, len(prompt)]
        for values in (prompt, output):
            row += [percentile(values, 50), percentile(values, 90), percentile(values, 99), int(values.max())]
        if with_cutoffs:
            total = prompt + output
            row += [_share(float(np.mean(total > cutoff))) for cutoff in TOKEN_CUTOFFS]
        rows.append(row)
    parts.append(_table(headers, rows))
    parts.insert(0, _para(what))
    return parts


def length_section(
    chars: pl.DataFrame, train: pl.DataFrame | None, tokenizer: Tokenizer | None, tokenizer_name: str | None
) -> str:
    """chars: `char_counts` of the train records; train: the records themselves, needed for tokens."""
    if chars.is_empty():
        return _section("lengths", "Lengths", [_para("The train split is empty.")])
    parts = lengths_html(
        _by_category("characters", chars),
        "Characters per train record as written (upsampled copies included), per category. Boxes span the "
        "quartiles, the red line is the median, whiskers reach the 1st and 99th percentiles.",
    )
    if tokenizer is not None:
        parts.append(f'<h3 id="tokens">Token lengths ({_esc(tokenizer_name)})</h3>')
        parts += lengths_html(
            token_lengths(train, tokenizer),
            "Tokens per train record (no special tokens, no prompt template). 'total > N': the share of records "
            "whose instruction+input and output together exceed N tokens, i.e. that a cutoff of N would truncate.",
        )
    return _section("lengths", "Lengths", parts)


def quarantine_html(manifest: dict[str, Any]) -> str:
    rules = quarantine_rules(manifest)
    parts = [
        _para(
            "Every rejected item is in quarantine.parquet with its source, location, rule and message. Quarantined "
            "items count toward a source's quarantine limit; deliberate exclusions (duplicates, questions without an "
            "answer key) do not. Held-out benchmark items are not rejections: see the 'held out' column."
        )
    ]
    if rules:
        parts.append(_img(quarantine_chart(rules), "rejected items by rule"))
    else:
        parts.append(_para("Nothing was rejected."))
    headers = ("source", "category", "status", "read", "quarantined", "ratio", "reasons", "excluded", "duplicates",
               "held out", "train items", "validation items", "train records", "validation records")  # fmt: skip
    rows = []
    for name, source in manifest["sources"].items():
        c = source["counts"]
        quarantined = sum(c["quarantined"].values())
        reasons = ", ".join(f"{rule} {n:,}" for rule, n in sorted({**c["quarantined"], **c["excluded"]}.items()))
        rows.append(
            (name, source["category"], source["status"], c["read"], quarantined,
             _share(quarantined / c["read"]) if c["read"] else "-", reasons or "-", sum(c["excluded"].values()),
             c["duplicates"], c["held_out"], c["train"], c["validation"], c["records"]["train"],
             c["records"]["validation"])
        )  # fmt: skip
    parts.append(_table(headers, rows))
    return _section("quarantine", "Quarantine reasons", parts)


def duplicates_html(manifest: dict[str, Any]) -> str:
    sources = [
        (name, s["counts"]["duplicates"], s["counts"]["valid"])
        for name, s in manifest["sources"].items()
        if s["status"] == "ok"
    ]
    parts = [
        _para(
            "Exact duplicates on the normalized instruction, input and output, across all sources; the record "
            "kept is the first by source priority (recipe order by default), so a later source loses its copy."
        )
    ]
    if sources:
        parts.append(_img(duplicate_chart(sources), "duplicate rate per source"))
    return _section("duplicates", "Duplicate rates", parts)


def breakdown_html(manifest: dict[str, Any]) -> str | None:
    breakdown = manifest.get("breakdown") or {}
    if not breakdown:
        return None
    parts = [
        _para(
            "Records per question type and language (train, with validation stacked hatched); held-out benchmark "
            "items per type. The table splits each type by subfield."
        )
    ]
    for source, info in sorted(breakdown.items()):
        parts.append(f"<h3>{_esc(source)}</h3>")
        records: dict[tuple[str, str, str], int] = {}
        for row in info["records"]:
            key = (row["type"], row["lang"], row["split"])
            records[key] = records.get(key, 0) + row["len"]
        if records:
            chart = type_lang_chart(records, f"{source}: records by type and language", "records")
            parts.append(_img(chart, f"{source} records by type and language"))
        held: dict[tuple[str, str, str], int] = {}
        for row in info["held_out"]:
            key = (row["type"], row["lang"], "held out")
            held[key] = held.get(key, 0) + row["len"]
        if held:
            chart = type_lang_chart(held, f"{source}: held-out items by type and language", "held-out items")
            parts.append(_img(chart, f"{source} held-out items by type"))
        parts.append(breakdown_table(info))
    return _section("breakdown", "Astro-QA breakdown", parts)


def breakdown_table(info: dict[str, Any]) -> str:
    """One row per (type, subfield): records per split and language, held-out items per language."""
    rows = [(r["type"], r["subfield"], r["split"], r["lang"], r["len"]) for r in info["records"]]
    rows += [(r["type"], r["subfield"], "held out", r["lang"], r["len"]) for r in info["held_out"]]
    columns = sorted({(split, lang) for _, _, split, lang, _ in rows}, key=lambda c: (_SPLIT_ORDER.get(c[0], 9), c))
    cells: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    for type_, subfield, split, lang, n in rows:
        cell = cells.setdefault((type_, subfield), {})
        cell[(split, lang)] = cell.get((split, lang), 0) + n
    body = [
        (type_, subfield or "(none)", *(cell.get(column, 0) for column in columns))
        for (type_, subfield), cell in sorted(cells.items())
    ]
    return _table(("type", "subfield", *(f"{split} {lang}" for split, lang in columns)), body)


_SPLIT_ORDER = {"train": 0, "validation": 1, "held out": 2}


def render(
    corpus_dir: Path, manifest: dict[str, Any], tokenizer: Path | None = None, train_chars: pl.DataFrame | None = None
) -> str:
    """The report page as a string. `train_chars`: `char_counts` of the train records when the caller
    has them (a build); else the train records are read from the shards."""
    loaded = load_tokenizer(tokenizer) if tokenizer is not None else None
    train = read_train(corpus_dir, manifest) if train_chars is None or loaded is not None else None
    chars = train_chars if train_chars is not None else char_counts(train)
    sections = [
        ("mix", "mix", mix_html(manifest)),
        ("lengths", "lengths", length_section(chars, train, loaded, tokenizer.name if tokenizer is not None else None)),
        ("quarantine", "quarantine", quarantine_html(manifest)),
        ("duplicates", "duplicates", duplicates_html(manifest)),
        ("breakdown", "Astro-QA breakdown", breakdown_html(manifest)),
    ]
    present = [(anchor, label, body) for anchor, label, body in sections if body is not None]
    nav = " ".join(f'<a href="#{anchor}">{_esc(label)}</a>' for anchor, label, _ in present)
    title = _esc(f"{manifest['corpus']}: corpus report")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n{header_html(manifest)}\n<nav>{nav}</nav>\n"
        + "\n".join(body for _, _, body in present)
        + "\n</body>\n</html>\n"
    )


def write_report(
    corpus_dir: Path, manifest: dict[str, Any], tokenizer: Path | None = None, train_chars: pl.DataFrame | None = None
) -> Path:
    """Write `report.html` into corpus_dir (atomically) and return its path.

    `tokenizer`: a tokenizer.json (or a folder with one) adds token lengths; a missing or invalid one
    raises StellarDataError naming it.
    """
    corpus_dir = Path(corpus_dir)
    page = render(corpus_dir, manifest, Path(tokenizer) if tokenizer is not None else None, train_chars)
    path = corpus_dir / REPORT_NAME
    staging = path.with_name(f".{REPORT_NAME}.tmp")
    staging.write_text(page, encoding="utf-8")
    staging.replace(path)
    return path


def regenerate_report(corpus_dir: Path, tokenizer: Path | None = None) -> Path:
    """Rewrite report.html of a built corpus and its checksum in manifest.json."""
    corpus = load(corpus_dir)
    path = write_report(corpus.path, corpus.manifest, tokenizer=tokenizer)
    manifest = corpus.manifest
    manifest["files"][REPORT_NAME] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    write_manifest(manifest, corpus.path / "manifest.json")
    return path
