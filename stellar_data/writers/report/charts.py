"""The report's charts: matplotlib figures drawn from report data, returned as base64 PNGs for
the page to embed as data: URIs (the page fetches nothing).

The figures are drawn on matplotlib's Agg canvas, never pyplot's global state, at a fixed dpi and
without the PNG `Software` tag, so the same data gives the same bytes. Labels are ASCII
(categories, sources, rules, types, languages): the default font has no CJK glyphs, so Chinese
text (subfields) appears only in the page's tables.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import CategoryMix, Lengths, QualityCounts, RuleCount

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
BLUE_LIGHT, BLUE, RED, GREY, BLACK = "#9ab8d8", "#2f5d8c", "#c0392b", "#9aa5a8", "#222222"
LANG_COLORS = ("#2f5d8c", "#e08e2b", "#4f9a5a", "#8e5ea2")
"""Languages in sorted order (en, zh, ...); validation / held-out bars use the same hue, hatched."""


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


def quality_chart(step: str, rows: Sequence[QualityCounts]) -> str:
    """Items one quality step removed per source, stacked by rule, as a share of the items it judged."""
    rules = sorted({rule for r in rows for rule in r.removed})
    figure, (ax,) = _figure(8, 0.4 * len(rows) + 1.6)
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for k, rule in enumerate(rules):
        shares = np.array([100 * r.removed.get(rule, 0) / r.judged if r.judged else 0.0 for r in rows])
        ax.barh(y, shares, left=left, color=LANG_COLORS[k % len(LANG_COLORS)], label=rule)
        left += shares
    for i, r in enumerate(rows):
        ax.annotate(f" {sum(r.removed.values()):,} / {r.judged:,}", (left[i], i), va="center", fontsize=8)
    ax.set_yticks(y, [r.source for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("removed / judged items (%)")
    ax.set_title(f"{step}: items removed per source")
    ax.set_xlim(0, max([*left, 1.0]) * 1.45)
    if rules:
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
