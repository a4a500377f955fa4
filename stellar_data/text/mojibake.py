"""What mojibake looks like, for the mojibake step (steps/quality/mojibake.py): the telltale patterns
of UTF-8 misread through a single-byte code page or GBK, the exact round trips that undo a misreading,
and what a repair must look like to be plausible text of a language.

Patterns are written with \\u / \\U escapes, which Python's re and polars' regex both read (literal
characters would need escaping rules that differ between the two).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache

import ftfy
import ftfy.bad_codecs  # registers the sloppy-windows-* codecs the round trips decode with

SINGLE_BYTE_CODECS = (
    "latin-1",
    "sloppy-windows-1252",
    "sloppy-windows-1251",
    "sloppy-windows-1250",
    "sloppy-windows-1253",
    "sloppy-windows-1254",
    "sloppy-windows-1257",
    "iso-8859-2",
    "macroman",
    "cp437",
)
"""The code pages ftfy's fix_encoding tries (its chardata.CHARMAP_ENCODINGS; a test checks they
agree): the mojibake step detects all, and repairs those its `codecs` setting lists."""


def char_class(codes: Iterable[int]) -> str:
    """A regex class of code points (see the module docstring)."""

    def esc(code: int) -> str:
        return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"

    ranges: list[list[int]] = []
    for code in sorted(set(codes)):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "[" + "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges) + "]"


_SPACED_LEADS = bytes([0xC2, 0xC3, 0xC5, 0xCE, 0xD0, 0xD9, 0xE2, 0xE3, 0xF0])
"""Lead bytes ftfy's restore_byte_a0 looks for before a space (chardata.ALTERED_UTF8_RE): mojibake
whose NBSP became a space, which no exact round trip repairs."""


@cache
def single_byte_telltale() -> str:
    """A UTF-8 lead byte (C2-F4) then a continuation byte (80-BF), as one of the code pages reads
    them: every multi-byte character of UTF-8 misread through that code page becomes one. Also a
    lead byte then a space where the continuation was an NBSP (not for macroman, where that is an
    en dash and a space, as ftfy says)."""
    parts = []
    for codec in SINGLE_BYTE_CODECS:
        leads, continuations = bytes(range(0xC2, 0xF5)).decode(codec), bytes(range(0x80, 0xC0)).decode(codec)
        parts.append(char_class(map(ord, leads)) + char_class(map(ord, continuations)))
        if codec != "macroman":
            parts.append(char_class(map(ord, _SPACED_LEADS.decode(codec))) + " ")
    return "|".join(parts)


@cache
def non_gb2312_han() -> str:
    """Han characters GBK encodes outside GB2312 (a byte below A1). UTF-8 read as GBK pairs
    continuation bytes (80-BF) with each other, which lands there: its every run of two Han
    characters yields one. Chinese text rarely holds them (rare and traditional characters)."""
    codes = []
    for code in [*range(0x3400, 0x4DC0), *range(0x4E00, 0xA000), *range(0xF900, 0xFB00)]:
        try:
            encoded = chr(code).encode("gbk")
        except UnicodeEncodeError:
            continue
        if encoded[0] < 0xA1 or encoded[1] < 0xA1:
            codes.append(code)
    return char_class(codes)


@cache
def suspect_pattern(gbk: bool) -> str:
    """What makes a field a candidate, for polars (one scan of each column)."""
    return "|".join(["\\uFFFD", single_byte_telltale(), *([non_gb2312_han()] if gbk else [])])


@cache
def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_LATIN_GREEK_COMMON = (
    "\u00a0-\u024f\u1e00-\u1eff"  # Latin-1 supplement, Latin extended (pinyin tones, Müller, café)
    "\u0300-\u036f\u0370-\u03ff"  # combining marks, Greek (α Centauri)
    "\u2000-\u2bff\ufe00-\ufe0f\U0001f000-\U0001faff"  # punctuation, symbols, arrows, math; emoji
)
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff"
_UNEXPECTED = {
    "en": re.compile(f"[^\x00-\x7f{_LATIN_GREEK_COMMON}]"),
    "zh": re.compile(f"[^\x00-\x7f{_LATIN_GREEK_COMMON}{_CJK}]"),
}
CJK_CHAR = re.compile(f"[{_CJK}]")
WIDE = re.compile("[\u0800-\U0010ffff]")
GBK_MIN_CJK = 3
"""A field that is no exact GBK round trip is mojibake when its GBK bytes read as at least this many
CJK characters of UTF-8 ..."""
GBK_CJK_PER_LOST = 2
"""... and this many per undecodable byte. Real Chinese text reads as noise: at most 3 CJK
characters against 3 undecodable bytes, over every real source (docs/quality/mojibake.md)."""


def implausible(mojibake: str, repaired: str, lang: str) -> str | None:
    """Why `repaired` is not plausible text of `lang` (see the module docstring); None when it is."""
    if found := _UNEXPECTED["en" if lang == "en" else "zh"].search(repaired):
        char = found.group()
        return f"it holds {char!r} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})"
    if lang == "en" and _non_ascii_letters(repaired) > _non_ascii_letters(mojibake):
        return "it holds more non-ASCII letters than the mojibake"
    return None


def _non_ascii_letters(text: str) -> int:
    return sum(1 for ch in text if ord(ch) > 0x7F and unicodedata.category(ch).startswith("L"))


def excerpt(text: str, start: int = 0, width: int = 40) -> str:
    """Up to `width` characters of `text` from a little before `start`, quoted with escapes (NBSP
    and C1 controls show), marked where cut."""
    begin = max(0, start - 8)
    part = text[begin : begin + width]
    return ("…" if begin else "") + repr(part) + ("…" if begin + width < len(text) else "")


@cache
def _whole_characters() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Per code page: a lead byte and as many continuation bytes as it announces, as read there."""
    patterns = []
    for codec in SINGLE_BYTE_CODECS:

        def read(first: int, last: int, codec: str = codec) -> str:
            return char_class(map(ord, bytes(range(first, last + 1)).decode(codec)))

        c = read(0x80, 0xBF)
        patterns.append(
            (codec, re.compile(f"{read(0xC2, 0xDF)}{c}|{read(0xE0, 0xEF)}{c}{{2}}|{read(0xF0, 0xF4)}{c}{{3}}"))
        )
    return tuple(patterns)


def misread_character(text: str) -> re.Match[str] | None:
    """The first run of `text` that is one UTF-8 character read through a single-byte code page."""
    for codec, pattern in _whole_characters():
        for found in pattern.finditer(text):
            try:
                found.group().encode(codec).decode("utf-8")
            except UnicodeError:
                continue
            return found
    return None


def codecs_of(plan: list[ftfy.ExplanationStep]) -> list[str] | None:
    """The code pages of a plan made only of (encode X, decode UTF-8) pairs; None for any other."""
    if not plan or len(plan) % 2:
        return None
    codecs = []
    for encode, decode in zip(plan[::2], plan[1::2], strict=True):
        if encode.action != "encode" or encode.parameter not in SINGLE_BYTE_CODECS:
            return None
        if decode.action != "decode" or decode.parameter not in ("utf-8", "utf-8-variants"):
            return None
        codecs.append(encode.parameter)
    return codecs


def round_trips(fixed: str, codecs: list[str], original: str) -> bool:
    """Does `fixed`, written as UTF-8 and read through `codecs` (last first), give `original` back?"""
    text = fixed
    try:
        for codec in reversed(codecs):
            text = text.encode("utf-8").decode(codec)
    except UnicodeError:
        return False
    return text == original


def gbk_round_trip(text: str) -> str | None:
    """`text` encoded as GBK and decoded as strict UTF-8, when reading that as GBK gives `text` again."""
    try:
        fixed = text.encode("gbk").decode("utf-8")
        return fixed if fixed.encode("utf-8").decode("gbk") == text else None
    except UnicodeError:
        return None
