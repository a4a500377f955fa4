"""Mojibake: UTF-8 text that something decoded with the wrong code page (`ä»€ä¹ˆæ˜¯APIï¼Ÿ` for
`什么是API？`), repaired when the repair is certain, else quarantined; and text holding U+FFFD, whose
lost bytes no repair brings back.

Rules, per text field (the triple and the structured `_x_*` fields), first match wins:
- `replacement_char`: the field holds U+FFFD (a decoder already replaced bytes it could not read).
- Single-byte code pages (cp1252, latin-1 and the others ftfy knows): ftfy's `badness` must call the
  field mojibake and `fix_encoding` must explain its repair as encode / decode steps only (never
  `fix_text`, which also rewrites full-width punctuation, nor ftfy's lossy guesses such as
  restore_byte_a0). The repair is kept when it is exact (the repaired text, encoded as UTF-8 and
  decoded through the same code pages, is the field again, character for character), went through
  code pages in `codecs`, and is plausible for the source's language; otherwise `mojibake`. Where
  ftfy sees no repair, the field is `mojibake` only if it still holds one whole UTF-8 character
  misread (`å¥½` in `ä½ å¥½`, whose NBSP became a space); `etelä”` (Finnish, quoted) holds none.
- UTF-8 read as GBK (ftfy has no such repair): the field encoded as GBK must decode as strict UTF-8,
  and that must give the field back when read as GBK again. Legitimate short Chinese texts do that
  by chance (67 Astro-QA options: `小时` -> `Сʱ`, `镁` -> `þ`), always into characters below U+0800,
  which UTF-8 writes in 2 bytes: so a GBK repair must also yield a character at or above U+0800
  (Han, CJK or general punctuation), and be plausible; a round trip that fails those is left alone.
  A field that is not an exact round trip is `mojibake` when its GBK bytes still read as UTF-8
  CJK text (at least 3 such characters, and twice as many as undecodable bytes): what a GBK reader
  that dropped bytes leaves. No real text comes near (measured: at most 3 against 3).
- A record with any refused field is quarantined whole, with the field and the suspicious span in
  the message; a kept record gets every repair (counted in the notes: `repaired`, and per field).

Plausible for the source's `lang`: every non-ASCII character of the repair belongs to the scripts of
the language (en: Latin, Greek, combining marks, punctuation and symbols, emoji; zh: those and Han,
CJK punctuation, full-width forms; auto / detect: zh's), and for en the repair holds no more
non-ASCII letters than the mojibake did (`Ã©` -> `é`: one for one). Han is not required of a zh
repair: English passages of Chinese sources are misread too (`â€œ` -> `“`). A repair that yields
Cyrillic, Hangul or C1 controls in these sources is another mess, refused as `mojibake`.

The step runs before normalize: normalize turns the NBSP inside `ä½\\xa0` (the cp1252 reading of
你) into a space, and the text can no longer be repaired exactly.

Cost: one vectorized regex over the fields that are not pure ASCII picks the candidates (U+FFFD; a
lead byte then a continuation byte as any single-byte code page reads them; with `gbk`, a Han
character outside GB2312, which GBK readings of UTF-8 Han text hold); only those pay for Python.
The patterns, round trips and plausibility live in text/mojibake.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import ftfy
import polars as pl
from ftfy.badness import is_bad

from ...record import EXTRA_PREFIX, TEXT_FIELDS
from ...text.mojibake import (
    CJK_CHAR,
    GBK_CJK_PER_LOST,
    GBK_MIN_CJK,
    WIDE,
    codecs_of,
    compiled,
    excerpt,
    gbk_round_trip,
    implausible,
    misread_character,
    non_gb2312_han,
    round_trips,
    single_byte_telltale,
    suspect_pattern,
)
from ..base import RecordResult
from .base import FilterConfig, passing_result, verdict_result

if TYPE_CHECKING:
    from ...recipe import SourceSpec


@dataclass(frozen=True)
class MojibakeConfig(FilterConfig):
    repair: bool = True
    """Repair mojibake whose repair is exact and plausible; False quarantines it as `mojibake` too
    (the message shows the repair)."""
    codecs: tuple[str, ...] = ("latin-1", "sloppy-windows-1252")
    """Single-byte code pages whose misreading of UTF-8 is repaired (ftfy's names): latin-1 and
    Windows-1252 are how UTF-8 is misread in practice (Python's and databases' latin-1, Windows'
    Western default). Mojibake through the other code pages ftfy knows is quarantined instead:
    repairing it should be a choice made after looking at the data."""
    gbk: bool = True
    """Also detect and repair UTF-8 read as GBK (Chinese Windows' code page)."""


@dataclass(frozen=True)
class Verdict:
    """A field's outcome: a repair (`repaired`) or a refusal (`rule`, `message`)."""

    repaired: str | None = None
    rule: str | None = None
    message: str = ""


def _refuse(message: str, rule: str = "mojibake") -> Verdict:
    return Verdict(rule=rule, message=message)


# --- the judgements ----------------------------------------------------------------------------


def judge(text: str, lang: str, config: MojibakeConfig) -> Verdict | None:
    """One candidate field's verdict; None: it stays as it is."""
    if (at := text.find("\ufffd")) >= 0:
        count = text.count("\ufffd")
        return _refuse(f"{count} U+FFFD replacement character(s), the first in {excerpt(text, at)}", "replacement_char")
    verdict = _single_byte(text, lang, config)
    if verdict is None and config.gbk:
        verdict = _gbk(text, lang, config)
    return verdict


def _single_byte(text: str, lang: str, config: MojibakeConfig) -> Verdict | None:
    found = compiled(single_byte_telltale()).search(text)
    if found is None or not is_bad(text):
        return None
    fixed, plan = ftfy.fix_encoding_and_explain(text)
    if fixed == text:
        # ftfy's badness is a cue to try, not a verdict: a real dpo_zh_demo answer quoting `etelä”`
        # is "bad" to it. Refuse only text still holding a whole misread character.
        character = misread_character(text)
        if character is None:
            return None
        return _refuse(
            f"{excerpt(text, character.start())} holds UTF-8 read through a single-byte code "
            f"page ({character.group()!r}), and no exact round trip repairs it"
        )
    span = excerpt(text, found.start())
    codecs = codecs_of(plan)
    if codecs is None or not round_trips(fixed, codecs, text):
        steps = ", ".join(f"{step.action} {step.parameter}" for step in plan)
        return _refuse(
            f"{span} looks like UTF-8 read through a single-byte code page, and no exact "
            f"round trip repairs it (ftfy would {steps})"
        )
    how = " then ".join(codecs)
    if refused := [c for c in codecs if c not in config.codecs]:
        return _refuse(f"{span} is UTF-8 read as {how}; {refused[0]} is not in `codecs`, so it is not repaired")
    if reason := implausible(text, fixed, lang):
        return _refuse(f"{span} repairs ({how}) to {excerpt(fixed)}, not plausible {lang} text: {reason}")
    return _repair(span, how, fixed, config)


def _gbk(text: str, lang: str, config: MojibakeConfig) -> Verdict | None:
    found = compiled(non_gb2312_han()).search(text)
    if found is None:
        return None
    span = excerpt(text, found.start())
    fixed = gbk_round_trip(text)
    reason = None if fixed is None else implausible(text, fixed, lang)
    if fixed is not None and reason is None and WIDE.search(fixed):
        return _repair(span, "GBK", fixed, config)
    read = text.encode("gbk", errors="replace").decode("utf-8", errors="replace")
    cjk, lost = len(CJK_CHAR.findall(read)), read.count("\ufffd")
    if cjk < GBK_MIN_CJK or cjk < GBK_CJK_PER_LOST * lost:
        return None  # a chance round trip of real Chinese text, or no GBK reading of UTF-8 at all
    if fixed is not None:
        return _refuse(f"{span} repairs (GBK) to {excerpt(fixed)}, not plausible {lang} text: {reason}")
    return _refuse(
        f"{span} looks like UTF-8 read as GBK (its GBK bytes read as UTF-8 {excerpt(read)}), "
        f"but {lost} byte(s) do not decode: no exact round trip repairs it"
    )


def _repair(span: str, how: str, fixed: str, config: MojibakeConfig) -> Verdict:
    if not config.repair:
        return _refuse(f"{span} is UTF-8 read as {how} (it repairs to {excerpt(fixed)}; repair = false)")
    return Verdict(repaired=fixed)


# --- the step ----------------------------------------------------------------------------------


def text_columns(frame: pl.DataFrame) -> list[str]:
    """The triple and the structured string fields (`_x_*`): templates build records from the latter."""
    extra = [c for c, dtype in frame.schema.items() if c.startswith(EXTRA_PREFIX) and dtype == pl.String]
    return [*TEXT_FIELDS, *extra]


def candidate_rows(column: pl.Series, pattern: str) -> pl.Series:
    """The rows of `column` matching `pattern`, scanned only where the text is not pure ASCII (one
    byte per character: a cheap length comparison), which mojibake never is."""
    non_ascii = (column.str.len_bytes() != column.str.len_chars()).fill_null(False).arg_true()
    return non_ascii.filter(column.gather(non_ascii).str.contains(pattern))


class Mojibake:
    """Repairs or quarantines mojibake; quarantines text holding U+FFFD (see the module docstring)."""

    name = "mojibake"
    rules = ("mojibake", "replacement_char")
    deliberate = False
    config = MojibakeConfig

    def __init__(self, config: MojibakeConfig, spec: SourceSpec) -> None:
        self.settings = config  # `config` is the class attribute naming the config class
        self.lang = spec.lang
        self.applies = config.applies_to(spec)

    def run(self, frame: pl.DataFrame, source: str) -> RecordResult:
        if not self.applies:
            return passing_result(self.name, frame, source)
        rules: list[str | None] = [None] * frame.height
        messages: list[str | None] = [None] * frame.height
        repairs: dict[str, dict[int, str]] = {}
        pattern = suspect_pattern(self.settings.gbk)
        for field in text_columns(frame):
            column = frame[field]
            rows = candidate_rows(column, pattern)
            for row, text in zip(rows.to_list(), column.gather(rows).to_list(), strict=True):
                verdict = None if rules[row] else judge(text, self.lang, self.settings)
                if verdict is None:
                    continue
                if verdict.rule is not None:
                    rules[row], messages[row] = verdict.rule, f"{field}: {verdict.message}"
                elif verdict.repaired is not None:
                    repairs.setdefault(field, {})[row] = verdict.repaired
        repaired, notes = apply_repairs(frame, repairs, rules)
        result = verdict_result(
            self.name,
            repaired,
            source,
            pl.Series(rules, dtype=pl.String),
            pl.Series(messages, dtype=pl.String),
            deliberate=self.deliberate,
        )
        result.stats.notes.update(notes)
        return result


def apply_repairs(
    frame: pl.DataFrame, repairs: dict[str, dict[int, str]], rules: list[str | None]
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The frame with the repairs of the records no rule refused, and the counts: `repaired`
    (records) and `repaired_<field>` for the triple's fields (every key always, so that each batch
    and source has the same notes)."""
    notes = dict.fromkeys(["repaired", *(f"repaired_{f}" for f in TEXT_FIELDS)], 0)
    changed_rows: set[int] = set()
    columns = []
    for field, by_row in repairs.items():
        kept = {row: text for row, text in by_row.items() if rules[row] is None}
        if not kept:
            continue
        changed_rows.update(kept)
        if field in TEXT_FIELDS:
            notes[f"repaired_{field}"] = len(kept)
        columns.append(frame[field].clone().scatter(list(kept), pl.Series(list(kept.values()), dtype=pl.String)))
    notes["repaired"] = len(changed_rows)
    return (frame.with_columns(columns) if columns else frame), notes
