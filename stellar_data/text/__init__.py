"""Text as the adapters and steps see it: the character classes they share here, and which
characters an OpenCC conversion may change (opencc_scope.py)."""

from __future__ import annotations

import re

# Han ideographs (BMP + extensions), CJK symbols and punctuation, fullwidth forms.
_CJK_CLASS = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff"
HAN_CLASS = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]"
"""Han ideographs as a regex class, valid for Python's `re` and polars alike."""
_HAN = re.compile(HAN_CLASS)
_CJK = re.compile(f"[{_CJK_CLASS}]")


def is_cjk(char: str) -> bool:
    """A CJK character or CJK punctuation (the neighbours between which a space is not written)."""
    return bool(char) and _CJK.fullmatch(char) is not None


def detect_lang(*texts: str) -> str:
    """`zh` when any text holds a Han character, else `en` (the two languages of the corpus)."""
    return "zh" if any(_HAN.search(t) for t in texts) else "en"
