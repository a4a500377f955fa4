"""report.html: one self-contained page that shows a built corpus to a human (header, category
mix, lengths, quarantine reasons, duplicate rates, and the breakdown of structured items).

Split by concern: `data` computes the numbers from the manifest and the train shards, `charts`
draws them as embedded PNGs, `page` assembles, escapes and writes the HTML. The build and the
`stellar-data report` command call the names below.
"""

from .data import char_counts
from .page import REPORT_NAME, regenerate_report, render, write_report

__all__ = ["REPORT_NAME", "char_counts", "regenerate_report", "render", "write_report"]
