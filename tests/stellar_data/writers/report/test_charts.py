"""The report's charts are PNGs whose bytes depend on the data only."""

from __future__ import annotations

import base64

from stellar_data.writers.report.charts import duplicate_chart, quarantine_chart
from stellar_data.writers.report.data import RuleCount


def test_a_chart_is_a_base64_png_without_the_software_tag_and_the_same_each_time() -> None:
    rules = [RuleCount("empty_option", quarantined=3, deliberate=0), RuleCount("duplicate", 0, 4)]

    png = base64.b64decode(quarantine_chart(rules))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"Software" not in png and b"matplotlib" not in png
    assert base64.b64decode(quarantine_chart(rules)) == png
    assert duplicate_chart([("a", 1, 10)]) != duplicate_chart([("a", 2, 10)])
