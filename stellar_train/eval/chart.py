"""A PNG of the tables: mean score per type, subfield and language, one bar per model, 95% CI whiskers.

Matplotlib's Agg canvas (no display, no pyplot). Labels stay ASCII (no CJK font is assumed): Chinese
subfield names are shown by their English names, anything else non-ASCII by a placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .formats import EN

PANELS = ("type", "subfield", "lang")


def ascii_label(name: str) -> str:
    if name.isascii():
        return name
    return EN.subfields.get(name) or "non-ascii:" + name.encode("unicode_escape").decode("ascii")[:24]


def write_chart(tables: dict, labels: Sequence[str], path: Path, title: str = "") -> Path:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no backend switch

    widths = [max(3.0, 1.2 * len(tables[p]) * max(1, len(labels)) * 0.6) for p in PANELS]
    figure = Figure(figsize=(sum(widths) + 2, 5))
    axes = figure.subplots(1, len(PANELS), width_ratios=widths, squeeze=False)
    width = 0.8 / max(1, len(labels))
    for axis, panel in zip(axes[0], PANELS, strict=True):
        names = list(tables[panel])
        for position, label in enumerate(labels):
            cells = [tables[panel][name].get(label) for name in names]
            xs = [i + (position - (len(labels) - 1) / 2) * width for i in range(len(names))]
            means = [100 * c["mean"] if c else 0.0 for c in cells]
            below = [100 * (c["mean"] - c["ci_low"]) if c else 0.0 for c in cells]
            above = [100 * (c["ci_high"] - c["mean"]) if c else 0.0 for c in cells]
            axis.bar(xs, means, width, yerr=[below, above], capsize=3, label=label)
        axis.set_xticks(range(len(names)), [ascii_label(n) for n in names], rotation=30, ha="right")
        axis.set_ylim(0, 100)
        axis.set_title(f"by {panel}")
        axis.set_ylabel("mean score (% of max), 95% CI")
    axes[0][0].legend()
    if title:
        figure.suptitle(title if title.isascii() else ascii_label(title))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)  # a bare Figure saves through the Agg canvas
    return path
