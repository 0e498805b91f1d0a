"""LIKE patterns, compiled once into a matcher that cannot backtrack catastrophically.

``%`` matches any run of characters, ``_`` exactly one, and the escape character
(backslash unless ``ESCAPE`` names another) makes the next one literal. Matching
is case-sensitive, like ``=``.

A pattern turned into one regex (``%`` → ``.*``) backtracks polynomially on
patterns such as ``%a%a%a%b`` against a long string, which would stall the
manager's event loop. Instead the pattern is split at its ``%`` into segments of
fixed length, each an escaped regex; the first must match at the start, the last
at the end, and each middle one is found leftmost after the previous one. With
fixed-length segments the leftmost match is always the best choice, so this is
exact and runs in O(len(text) × len(pattern)).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

Matcher = Callable[[str], bool]


@dataclass(frozen=True)
class _Segment:
    regex: re.Pattern[str]
    width: int


def _segments(pattern: str, escape: str) -> tuple[list[_Segment], bool]:
    """Split a pattern at its unescaped ``%`` into segments; True when it had a ``%``."""
    parts: list[list[str]] = [[]]
    wildcard = False
    chars = iter(pattern)
    for char in chars:
        if char == escape:
            parts[-1].append(re.escape(next(chars, escape)))
        elif char == "%":
            wildcard = True
            parts.append([])
        elif char == "_":
            parts[-1].append(".")
        else:
            parts[-1].append(re.escape(char))
    # Each part is a list of one-character regexes, so its width is its length.
    return [_Segment(re.compile("".join(part), re.DOTALL), len(part)) for part in parts], wildcard


@functools.lru_cache(maxsize=256)
def compile_like(pattern: str, escape: str = "\\") -> Matcher:
    """A function telling whether a string matches the LIKE ``pattern``."""
    segments, wildcard = _segments(pattern, escape)
    if not wildcard:
        whole = segments[0].regex
        return lambda text: whole.fullmatch(text) is not None
    first, *middle, last = segments
    middle = [segment for segment in middle if segment.width]

    def matches(text: str) -> bool:
        if first.width and first.regex.match(text) is None:
            return False
        position = first.width
        for segment in middle:
            found = segment.regex.search(text, position)
            if found is None:
                return False
            position = found.end()
        tail = len(text) - last.width
        if tail < position:
            return False
        return not last.width or last.regex.fullmatch(text, tail) is not None

    return matches
