"""report.html itself: the sections, the tables and the escaping, assembled into one page from the
report data and the embedded charts, and written into a corpus folder.

The page fetches nothing (styles inline, charts as data: URIs) and is a function of the manifest,
the train shards and the tokenizer only: no timestamps or durations, everything in a fixed order,
so two builds of the same inputs write byte-identical pages.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ...corpus import load
from ...hashing import file_sha256
from ..manifest import write_manifest
from . import charts, data
from .data import SOURCE_COUNTS, TOKEN_CUTOFFS, Lengths

if TYPE_CHECKING:
    from tokenizers import Tokenizer

REPORT_NAME = "report.html"
BREAKDOWN_TITLE = "Astro-QA breakdown"
"""The breakdown section's heading. The section appears whenever the manifest's `breakdown` has a
source (items with a type and subfield), whatever its name; Astro-QA is the one such source today."""

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
    rows = data.category_mix(manifest)
    mixed = manifest.get("mix") is not None
    parts = [_img(charts.mix_chart(rows, mixed), "train records per category before and after mixing")]
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
    cutoffs = TOKEN_CUTOFFS if lengths.unit == "tokens" else ()
    headers = ["category", "records"]
    for part in ("instruction+input", "output"):
        headers += [f"{part} median", f"{part} p90", f"{part} p99", f"{part} max"]
    headers += [f"total > {cutoff}" for cutoff in cutoffs]
    rows = [
        (r.category, r.records, *r.stats, *(_share(share) for share in r.longer))
        for r in data.length_rows(lengths, cutoffs)
    ]
    return [
        _para(what),
        _img(charts.length_chart(lengths), f"{lengths.unit} per record by category"),
        _table(headers, rows),
    ]


def length_section(
    chars: pl.DataFrame, train: pl.DataFrame | None, tokenizer: Tokenizer | None, tokenizer_name: str | None
) -> str:
    """chars: `char_counts` of the train records; train: the records themselves, needed for tokens."""
    if chars.is_empty():
        return _section("lengths", "Lengths", [_para("The train split is empty.")])
    parts = lengths_html(
        data.by_category("characters", chars),
        "Characters per train record as written (upsampled copies included), per category. Boxes span the "
        "quartiles, the red line is the median, whiskers reach the 1st and 99th percentiles.",
    )
    if tokenizer is not None:
        parts.append(f'<h3 id="tokens">Token lengths ({_esc(tokenizer_name)})</h3>')
        parts += lengths_html(
            data.token_lengths(train, tokenizer),
            "Tokens per train record (no special tokens, no prompt template). 'total > N': the share of records "
            "whose instruction+input and output together exceed N tokens, i.e. that a cutoff of N would truncate.",
        )
    return _section("lengths", "Lengths", parts)


_BESIDE_QUARANTINED = ("ratio", "reasons")
"""Columns the source table shows right after the quarantined count."""


def quarantine_html(manifest: dict[str, Any]) -> str:
    rules = data.quarantine_rules(manifest)
    parts = [
        _para(
            "Every rejected item is in quarantine.parquet with its source, location, rule and message. Quarantined "
            "items count toward a source's quarantine limit; deliberate exclusions (duplicates, questions without an "
            "answer key) do not. Held-out benchmark items are not rejections: see the 'held out' column."
        )
    ]
    if rules:
        parts.append(_img(charts.quarantine_chart(rules), "rejected items by rule"))
    else:
        parts.append(_para("Nothing was rejected."))
    headers = ["source", "category", "status"]
    for key, label in SOURCE_COUNTS:
        headers += [label, *(_BESIDE_QUARANTINED if key == "quarantined" else ())]
    rows = []
    for source in data.source_rows(manifest):
        row: list[object] = [source.name, source.category, source.status]
        for key, _ in SOURCE_COUNTS:
            row.append(source.counts[key])
            if key == "quarantined":
                ratio = _share(source.quarantine_ratio) if source.quarantine_ratio is not None else "-"
                row += [ratio, ", ".join(f"{rule} {n:,}" for rule, n in source.reasons.items()) or "-"]
        rows.append(row)
    parts.append(_table(headers, rows))
    return _section("quarantine", "Quarantine reasons", parts)


def quality_html(manifest: dict[str, Any]) -> str | None:
    """None (no section) when the recipe turns no quality step on."""
    steps = data.quality_counts(manifest)
    if not steps:
        return None
    parts = [
        _para(
            "Quality steps (docs/QUALITY.md): each refused item is in quarantine.parquet with its rule and the "
            "evidence (the matched span, the measured value and its threshold). Mojibake and replacement characters "
            "are quarantined (the quarantine limit); the filters' removals count as filtered, under "
            "max_filtered_ratio."
        )
    ]
    for step, rows in steps.items():
        parts.append(f"<h3>{_esc(step)}</h3>")
        if any(r.removed for r in rows):
            parts.append(_img(charts.quality_chart(step, rows), f"{step}: items removed per source"))
        notes = sorted({note for r in rows for note in r.notes})
        table = [
            (r.source, r.judged, ", ".join(f"{rule} {n:,}" for rule, n in sorted(r.removed.items())) or "-",
             *(r.notes.get(note, 0) for note in notes))
            for r in rows
        ]  # fmt: skip
        parts.append(_table(("source", "judged", "removed", *notes), table))
    return _section("quality", "Quality filters", parts)


def duplicates_html(manifest: dict[str, Any]) -> str:
    sources = data.duplicate_counts(manifest)
    parts = [
        _para(
            "Exact duplicates on the normalized instruction, input and output, across all sources; the record "
            "kept is the first by source priority (recipe order by default), so a later source loses its copy."
        )
    ]
    if sources:
        parts.append(_img(charts.duplicate_chart(sources), "duplicate rate per source"))
    return _section("duplicates", "Duplicate rates", parts)


def breakdown_html(manifest: dict[str, Any]) -> str | None:
    """None (no section) when no source has structured items."""
    found = data.breakdowns(manifest)
    if not found:
        return None
    parts = [
        _para(
            "Records per question type and language (train, with validation stacked hatched); held-out benchmark "
            "items per type. The table splits each type by subfield."
        )
    ]
    for b in found:
        parts.append(f"<h3>{_esc(b.source)}</h3>")
        if b.records:
            chart = charts.type_lang_chart(b.records, f"{b.source}: records by type and language", "records")
            parts.append(_img(chart, f"{b.source} records by type and language"))
        if b.held_out:
            chart = charts.type_lang_chart(
                b.held_out, f"{b.source}: held-out items by type and language", "held-out items"
            )
            parts.append(_img(chart, f"{b.source} held-out items by type"))
        headers = ("type", "subfield", *(f"{split} {lang}" for split, lang in b.columns))
        parts.append(_table(headers, [(type_, subfield or "(none)", *n) for type_, subfield, n in b.rows]))
    return _section("breakdown", BREAKDOWN_TITLE, parts)


def render(
    corpus_dir: Path, manifest: dict[str, Any], tokenizer: Path | None = None, train_chars: pl.DataFrame | None = None
) -> str:
    """The report page as a string. `train_chars`: `char_counts` of the train records when the caller
    has them (a build); else the train records are read from the shards."""
    loaded = data.load_tokenizer(tokenizer) if tokenizer is not None else None
    train = data.read_train(corpus_dir, manifest) if train_chars is None or loaded is not None else None
    chars = train_chars if train_chars is not None else data.char_counts(train)
    sections = [
        ("mix", "mix", mix_html(manifest)),
        ("lengths", "lengths", length_section(chars, train, loaded, tokenizer.name if tokenizer is not None else None)),
        ("quarantine", "quarantine", quarantine_html(manifest)),
        ("quality", "quality", quality_html(manifest)),
        ("duplicates", "duplicates", duplicates_html(manifest)),
        ("breakdown", BREAKDOWN_TITLE, breakdown_html(manifest)),
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
