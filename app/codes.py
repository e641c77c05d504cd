"""Texts as arrays of code points, and the character classes the compiled loops read.

The loops of `app/kernels.py` read a chunk of texts packed into one array of code points
(`text_codes`) and look each code point's class up in `CLASSES`, which is filled lazily
from Python's own regex engine, so `\\w` and `\\s` mean exactly what they mean to `re`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from app import kernels
from app.text import SINGLE_WORD, WORD_PATTERN

_WORD = re.compile(WORD_PATTERN)
_BACKSLASH_W = re.compile(r"\w")
_BACKSLASH_S = re.compile(r"\s")
_SINGLE = re.compile(f"[{SINGLE_WORD}]")


CLASSES = np.full(0x110000, kernels.UNKNOWN, dtype=np.uint8)


def classify(codes: np.ndarray) -> None:
    """Fill the character classes of code points not seen before, from Python's own regex engine."""
    unknown = codes[CLASSES[codes] == kernels.UNKNOWN]
    for code in np.unique(unknown).tolist():
        ch = chr(code)
        word = _BACKSLASH_W.match(ch) is not None
        space = _BACKSLASH_S.match(ch) is not None
        token = _WORD.fullmatch(ch) is not None
        CLASSES[code] = (
            (kernels.WORD_CHAR if word else 0)
            | (kernels.SINGLE if word and _SINGLE.match(ch) else 0)
            | (kernels.MARK if unicodedata.category(ch).startswith("M") else 0)
            | (kernels.SPACE if space else 0)
            | (kernels.EXCLUDED if not (word or space or token) else 0)
        )


def packed_codes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts as one array of code points, and where each text starts (plus the end)."""
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in texts], out=starts[1:])
    return np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32), starts


def text_codes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`packed_codes` of texts to read, with the classes of their characters known."""
    codes, starts = packed_codes(texts)
    classify(codes)
    return codes, starts
