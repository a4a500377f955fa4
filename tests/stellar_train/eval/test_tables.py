"""Aggregation: bootstrap intervals on known vectors (deterministic, order-free, close to the normal
approximation for a large binary sample), normalized means with raw points kept, paired differences,
the console tables and the chart."""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import pytest
from rich.console import Console

from stellar_train.eval.chart import ascii_label, write_chart
from stellar_train.eval.items import EvalItem
from stellar_train.eval.tables import Scored, bootstrap_ci, cell, render, summarize


def test_bootstrap_ci_on_known_vectors() -> None:
    assert bootstrap_ci([1.0] * 30) == (1.0, 1.0)
    assert bootstrap_ci([0.25]) == (0.25, 0.25)
    low, high = bootstrap_ci([0.0, 1.0] * 200)  # mean 0.5, normal approximation 0.5 +- 1.96 * sqrt(.25 / 400)
    half = 1.96 * math.sqrt(0.25 / 400)
    assert low == pytest.approx(0.5 - half, abs=0.01) and high == pytest.approx(0.5 + half, abs=0.01)
    assert low < 0.5 < high


def test_bootstrap_ci_is_deterministic_and_independent_of_order() -> None:
    rng = random.Random(3)
    values = [rng.random() for _ in range(57)]
    shuffled = values[::-1]
    assert bootstrap_ci(values) == bootstrap_ci(values) == bootstrap_ci(shuffled)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values)  # the seed is what fixes it


def test_cell_normalizes_and_keeps_points() -> None:
    values = [Scored(2.0, 2.0), Scored(0.5, 2.0), Scored(0.0, 2.0), Scored(1.0, 2.0)]
    got = cell(values)
    assert got["n"] == 4 and got["mean"] == pytest.approx((1 + 0.25 + 0 + 0.5) / 4)
    assert (got["points"], got["max_points"]) == (3.5, 8.0)
    assert got["ci_low"] <= got["mean"] <= got["ci_high"]


ITEMS = [
    EvalItem("a", "a", "single_choice_4", "天体物理学", "zh", "q", (), "A"),
    EvalItem("b", "b", "single_choice_4", "天文学史", "en", "q", (), "A"),
    EvalItem("c", "c", "multi_select", "天体物理学", "en", "q", (), "AB"),
    EvalItem("d", "d", "subjective", "天体物理学", "zh", "q", (), "ref"),
]
BASE = {"a": Scored(0, 1), "b": Scored(1, 1), "c": Scored(0.5, 2), "d": Scored(0.2, 1)}
ADAPTER = {"a": Scored(1, 1), "b": Scored(1, 1), "c": Scored(2, 2), "d": Scored(0.4, 1)}


def test_summary_per_type_subfield_language_with_the_difference() -> None:
    tables = summarize(ITEMS, {"base": BASE, "adapter": ADAPTER})
    assert set(tables) == {"overall", "type", "subfield", "lang"}
    assert list(tables["type"]) == ["multi_select", "single_choice_4", "subjective"]
    assert tables["type"]["single_choice_4"]["base"]["mean"] == 0.5
    assert tables["type"]["multi_select"]["base"] == {"n": 1, "mean": 0.25, "ci_low": 0.25, "ci_high": 0.25,
                                                      "points": 0.5, "max_points": 2.0}  # fmt: skip
    assert tables["overall"]["all"]["adapter"]["mean"] == pytest.approx((1 + 1 + 1 + 0.4) / 4)
    assert tables["overall"]["all"]["delta"]["mean"] == pytest.approx((1 + 0 + 0.75 + 0.2) / 4)
    assert tables["lang"]["en"]["delta"]["mean"] == pytest.approx(0.375)
    assert tables["subfield"]["天体物理学"]["base"]["n"] == 3
    single = summarize(ITEMS, {"base": BASE})
    assert "delta" not in single["overall"]["all"]


def test_console_tables_and_chart(tmp_path: Path) -> None:
    tables = summarize(ITEMS, {"base": BASE, "adapter": ADAPTER})
    out = io.StringIO()
    render(tables, ["base", "adapter"], Console(file=out, width=160))
    text = out.getvalue()
    for expected in ("by type", "by subfield", "by lang", "base % [95% CI]", "adapter - base", "天文学史", "+48.8"):
        assert expected in text
    path = write_chart(tables, ["base", "adapter"], tmp_path / "chart.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ascii_label("天体物理学") == "astrophysics" and ascii_label("未知").isascii() and ascii_label("en") == "en"
