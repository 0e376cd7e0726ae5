"""Normalisation of what customers type, before anything reads it.

Customers write Traditional as well as Simplified characters, full-width digits
(３２０１…) and stray spaces; the NLU and the services see one canonical form.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_NLU_CHARS = 300
_SPACES = re.compile(r"\s+")
_CJK_SPACE = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])\s+|\s+(?=[\u3000-\u9fff\uff00-\uffef])")


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


def normalize(text: str | None) -> str:
    """Simplified characters, half-width digits and letters, no space next to Chinese."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = _t2s().convert(text)
    text = _CJK_SPACE.sub("", text)
    return _SPACES.sub(" ", text).strip()


def is_meaningful(text: str) -> bool:
    """False for messages of only emoji, punctuation or spaces."""
    return any(c.isalnum() for c in text)
