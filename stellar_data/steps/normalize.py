"""Normalize text: line ends, invisible / private-use / control characters, odd spaces, NFC, OpenCC.

Rules for invisible characters:
- Removed everywhere: soft hyphen, zero-width space, word joiner and invisible operators
  (U+2060-U+2064), BOM (U+FEFF), and the bidirectional controls: LRM / RLM (U+200E, U+200F), ALM
  (U+061C), embeddings and overrides (U+202A-U+202E), isolates (U+2066-U+2069). Training text has
  no use for them, and an override can make a text display unlike what it says.
- ZWNJ (U+200C) and ZWJ (U+200D) are kept where a script needs them, removed elsewhere (e.g.
  between Han or Latin letters). A run of them is kept when the character just before or after the
  run is a letter or mark of a script that joins its letters: Arabic (Persian included), Devanagari
  to Malayalam (U+0900-U+0D7F), Sinhala, Mongolian. A ZWJ is also kept inside an emoji sequence:
  emoji (U+1F000-U+1FAFF, U+2300-U+23FF, U+2600-U+27BF, U+2B00-U+2BFF), each optionally followed
  by VS16 or a skin tone, joined by single ZWJs (e.g. U+1F469 U+200D U+2695 U+FE0F, a woman health
  worker). Other invisible characters are removed first, so a joiner is judged by its visible
  neighbours.

OpenCC sees only the parts of the texts it may change (the runs of `convert_texts`, see
opencc_scope.py), many at once (joined by a sentinel), because its binding costs a call per string.
Protected terms (e.g. 蒭藁: OpenCC t2s would write 𫇴藁) are swapped for sentinels before the
conversion and restored after it, so they keep the form the source wrote. Both sentinels are
private-use characters, which this step has already removed from the text, so they cannot collide.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import opencc
import polars as pl

from ..record import EXTRA_PREFIX, TEXT_FIELDS, quarantine_frame
from ..text.opencc_scope import changeable_characters, dictionary_characters
from .base import RecordResult, StepStats

_INVISIBLE = "\u00ad\u200b\u2060-\u2064\ufeff"
_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_PRIVATE_USE = "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_REMOVE = f"[{_INVISIBLE}{_BIDI_CONTROLS}{_PRIVATE_USE}{_CONTROL}]"
_JOINERS = "[\u200c\u200d]"
_JOINING_SCRIPTS = (
    "[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\u0900-\u0d7f\u0d80-\u0dff\u1800-\u18af\ufb50-\ufdff\ufe70-\ufefe]"
)
_EMOJI = "[\U0001f000-\U0001faff\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff][\ufe0f\U0001f3fb-\U0001f3ff]*"
_KEPT_JOINERS = (
    f"({_JOINERS}*{_JOINING_SCRIPTS}(?:{_JOINING_SCRIPTS}|{_JOINERS})*"  # joiners beside a joining script's letters
    f"|{_EMOJI}(?:\u200d{_EMOJI})+)"  # an emoji ZWJ sequence
)
_JOINER_PATTERN = f"{_KEPT_JOINERS}|{_JOINERS}+"
"""Matches kept runs (captured, written back as they are) and other joiner runs (removed)."""
_ODD_SPACES = "[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"

_SEPARATOR = "\U0010fffd"
_FIRST_TERM_SENTINEL = 0xF0000
_CHUNK_CHARS = 1 << 22


@dataclass(frozen=True)
class NormalizeConfig:
    opencc: str = "none"
    """none, t2s, tw2s or hk2s."""
    protected_terms: tuple[str, ...] = ()


# Characters at or above U+2E80 (CJK radicals onwards): OpenCC's t2s / tw2s / hk2s leave every
# character below it as it is (a test checks this). The scope when the dictionaries cannot be read.
_CJK_AND_ABOVE = "[\u2e80-\U0010ffff]"


@cache
def conversion_scope(config_name: str) -> str:
    """A regex class of the characters OpenCC `config_name` may change (see opencc_scope.py): a
    text without one is not sent to OpenCC."""
    changeable = changeable_characters(config_name)
    return _CJK_AND_ABOVE if changeable is None else char_class(sorted(map(ord, changeable)))


def clean_expr(column: str) -> pl.Expr:
    """Everything but NFC (see `nfc`), as one vectorized expression."""
    return (
        pl.col(column)
        .str.replace_all("\r\n?", "\n")
        .str.replace_all(_REMOVE, "")
        .str.replace_all(_JOINER_PATTERN, "${1}")
        .str.replace_all(_ODD_SPACES, " ")
        .str.strip_chars()
    )


def clean(series: pl.Series) -> pl.Series:
    """`clean_expr` on the texts it would change only: one scan finds them (most texts need nothing)."""
    needs = series.str.contains(f"\r|{_REMOVE}|{_JOINERS}|{_ODD_SPACES}|^\\s|\\s$").fill_null(False)
    if not needs.any():
        return series
    rows = needs.arg_true()
    cleaned = series.gather(rows).to_frame().select(clean_expr(series.name)).to_series()
    return series.scatter(rows, cleaned)


@cache
def nfc_sensitive_class() -> str:
    """A regex class of every character NFC might change or combine with its neighbour.

    Characters with a canonical decomposition, a nonzero combining class, the second character of a
    canonical pair, Hangul vowel and trailing jamo. A text holding none of them is already NFC, so
    only the (rare) texts that hold one pay for normalization.
    """
    return _sensitive_class(compatibility=False)


def _sensitive_class(compatibility: bool) -> str:
    return char_class(sensitive_code_points(compatibility))


def char_class(codes: Iterable[int]) -> str:
    """A regex class (polars' syntax) of sorted code points, consecutive ones as ranges."""
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "[" + "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" if a != b else f"\\x{{{a:X}}}" for a, b in ranges) + "]"


@cache
def sensitive_code_points(compatibility: bool) -> tuple[int, ...]:
    """The code points of nfc_sensitive_class, sorted; with `compatibility`, those NFKC might change
    too (fullwidth forms, ligatures, circled and math letters, ...)."""
    flagged = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        decomposition = unicodedata.decomposition(char)
        canonical = bool(decomposition) and not decomposition.startswith("<")
        if canonical or unicodedata.combining(char) or (compatibility and decomposition):
            flagged.add(code)
        if canonical and len(parts := decomposition.split()) == 2:
            flagged.add(int(parts[1], 16))
    return tuple(sorted(flagged))


@cache
def _needs_cleaning_or_nfc() -> str:
    return f"\r|{_REMOVE}|{_JOINERS}|{_ODD_SPACES}|^\\s|\\s$|{nfc_sensitive_class()}"


def clean_and_nfc(series: pl.Series) -> pl.Series:
    """`clean` then `nfc`, on the texts either may change: one scan finds them (one regex pass over
    the column costs the same as either scan alone)."""
    needs = series.str.contains(_needs_cleaning_or_nfc()).fill_null(False)
    if not needs.any():
        return series
    rows = needs.arg_true()
    return series.scatter(rows, nfc(clean(series.gather(rows))))


def nfc(series: pl.Series) -> pl.Series:
    """NFC-normalize only the texts that may need it (normalizing all costs ~10x more)."""
    needs = series.str.contains(nfc_sensitive_class()).fill_null(False)
    if not needs.any():
        return series
    rows = needs.arg_true()
    return series.scatter(rows, series.gather(rows).str.normalize("NFC"))


class ChineseConverter:
    """OpenCC over batches of texts, leaving protected terms as written."""

    def __init__(self, config_name: str, protected_terms: tuple[str, ...]) -> None:
        self._opencc = opencc.OpenCC(f"{config_name}.json")
        # Longest first, so a term inside a longer one does not split it.
        self._terms = sorted(protected_terms, key=lambda t: (-len(t), t))

    def convert(self, texts: list[str]) -> list[str]:
        out: list[str] = []
        start = 0
        while start < len(texts):
            size, end = 0, start
            while end < len(texts) and (end == start or size < _CHUNK_CHARS):
                size += len(texts[end]) + 1
                end += 1
            out.extend(self._convert_chunk(texts[start:end]))
            start = end
        return out

    def _convert_chunk(self, texts: list[str]) -> list[str]:
        joined = _SEPARATOR.join(texts)
        # str.replace per term the chunk holds: a few C-speed passes, no per-match Python callback.
        present = [(term, chr(_FIRST_TERM_SENTINEL + i)) for i, term in enumerate(self._terms) if term in joined]
        for term, sentinel in present:
            joined = joined.replace(term, sentinel)
        converted = self._opencc.convert(joined)
        for term, sentinel in present:
            converted = converted.replace(sentinel, term)
        parts = converted.split(_SEPARATOR)
        if len(parts) != len(texts):  # never expected: OpenCC maps the sentinel to itself
            raise RuntimeError("OpenCC changed the batch separator; cannot split its output")
        return parts


@cache
def conversion_runs(config_name: str) -> str | None:
    """A regex of the maximal runs of dictionary-key characters holding a changeable one (see
    opencc_scope.py); None when the dictionaries cannot be read."""
    characters = dictionary_characters(config_name)
    if characters is None:
        return None
    keyed = char_class(sorted(map(ord, characters.keyed)))
    return f"{keyed}*{conversion_scope(config_name)}{keyed}*"


_RUNS_SHARE = 0.25
"""When the distinct runs hold more than this share of the texts' characters (mostly traditional
text), converting the texts whole is cheaper than converting the runs and replacing them."""


def convert_chinese(columns: list[pl.Series], config: NormalizeConfig) -> list[pl.Series]:
    """OpenCC over the texts that hold a character it may change, in one batch for all columns."""
    scope = conversion_scope(config.opencc)
    rows = [c.str.contains(scope).fill_null(False).arg_true() for c in columns]
    if not any(len(r) for r in rows):
        return columns
    converted = convert_texts(pl.concat([c.gather(r) for c, r in zip(columns, rows, strict=True)]), config)
    out, start = [], 0
    for column, r in zip(columns, rows, strict=True):
        out.append(column.scatter(r, converted.slice(start, len(r))) if len(r) else column)
        start += len(r)
    return out


def convert_texts(texts: pl.Series, config: NormalizeConfig, runs_share: float = _RUNS_SHARE) -> pl.Series:
    """Each text as OpenCC `config.opencc` writes it, protected terms as written.

    OpenCC sees only the distinct runs that may change (`conversion_runs`), which polars then
    replaces in the texts, unless those runs hold more than `runs_share` of the characters. A
    protected term may span runs, so a text holding one is converted whole.
    """
    converter = ChineseConverter(config.opencc, config.protected_terms)
    runs = conversion_runs(config.opencc)
    if runs is None:
        return _convert_whole(texts, converter)
    texts = texts.clone()  # scattered into below
    holds_term = texts.str.contains_any(list(config.protected_terms)) if config.protected_terms else None
    if holds_term is None or not holds_term.any():
        return _convert_runs(texts, runs, converter, runs_share)
    whole, by_runs = holds_term.arg_true(), (~holds_term).arg_true()
    converted_by_runs = _convert_runs(texts.gather(by_runs), runs, converter, runs_share)
    texts.scatter(whole, _convert_whole(texts.gather(whole), converter))
    return texts.scatter(by_runs, converted_by_runs)


def _convert_whole(texts: pl.Series, converter: ChineseConverter) -> pl.Series:
    return pl.Series(texts.name, converter.convert(texts.to_list()), dtype=pl.String)


def _convert_runs(texts: pl.Series, runs_pattern: str, converter: ChineseConverter, runs_share: float) -> pl.Series:
    runs = texts.str.extract_all(runs_pattern)
    distinct = runs.explode().drop_nulls().unique().sort()
    if distinct.str.len_chars().sum() > runs_share * texts.str.len_chars().sum():
        return _convert_whole(texts, converter)
    converted = pl.Series(converter.convert(distinct.to_list()), dtype=pl.String)
    changed = distinct != converted
    if not changed.any():
        return texts
    changed_runs = distinct.filter(changed)
    # Every pattern occurs only inside a run. A run holding a changed run is matched whole (leftmost,
    # longest first), so a changed run is replaced only where it is a whole run.
    holds_changed = ~changed & distinct.str.contains_any(changed_runs.to_list())
    table = pl.DataFrame({"run": distinct, "converted": converted}).filter(changed | holds_changed)
    table = table.sort(pl.col("run").str.len_bytes(), "run", descending=[True, False])
    rows = runs.list.eval(pl.element().is_in(changed_runs.implode())).list.any().arg_true()
    replaced = texts.gather(rows).str.replace_many(table["run"].to_list(), table["converted"].to_list(), leftmost=True)
    return texts.scatter(rows, replaced)


def normalize(frame: pl.DataFrame, config: NormalizeConfig, source: str) -> tuple[pl.DataFrame, StepStats]:
    """Normalize the triple and any structured text fields (`_x_*` columns) the same way."""
    stats = StepStats("normalize", source, total=frame.height, kept=frame.height)
    columns = [*TEXT_FIELDS, *(c for c in frame.columns if c.startswith(EXTRA_PREFIX))]
    cleaned = frame.with_columns(clean_and_nfc(frame[c]) for c in columns)
    if config.opencc != "none" and frame.height:
        cleaned = cleaned.with_columns(convert_chinese([cleaned[c] for c in columns], config))
    differs = pl.DataFrame([frame[c] != cleaned[c] for c in TEXT_FIELDS]).select(pl.any_horizontal(pl.all()))
    stats.notes["changed"] = int(differs.to_series().sum())
    return cleaned, stats


class Normalize:
    """Text cleaning, NFC and the source's OpenCC conversion; refuses nothing."""

    name = "normalize"
    drops = ""

    def __init__(self, config: NormalizeConfig) -> None:
        self.config = config

    def run(self, frame: pl.DataFrame, source: str) -> RecordResult:
        cleaned, stats = normalize(frame, self.config, source)
        return RecordResult(cleaned, quarantine_frame([]), stats)
