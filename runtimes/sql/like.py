"""LIKE patterns, compiled once into a matcher whose work is bounded.

``%`` matches any run of characters, ``_`` exactly one, and the escape character
(backslash unless ``ESCAPE`` names another) makes the next one literal. Matching
is case-sensitive, like ``=``.

A pattern turned into one regex (``%`` → ``.*``) backtracks polynomially on
patterns such as ``%a%a%a%b`` against a long string, which would stall the
manager's event loop. Instead the pattern is split at its ``%`` into segments of
fixed width, each an escaped regex; the first must match at the start, the last
at the end, and each middle one is found leftmost after the previous one. With
fixed-width segments the leftmost match is always the best choice, so this is
exact. A segment without ``_`` is searched with ``str.find`` (linear time); one
with ``_`` costs up to its width per character searched, and when that would
exceed ``SEARCH_BUDGET`` steps the result is NULL rather than a blocked loop.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

Matcher = Callable[[str], "bool | None"]

# The most regex steps (characters searched × segment width) one LIKE may take.
SEARCH_BUDGET = 20_000_000
# A pattern read from a message longer than this is NULL: compiling it would take too long.
MAX_DYNAMIC_PATTERN = 64 * 1024


@dataclass(frozen=True)
class _Segment:
    regex: re.Pattern[str]
    width: int
    literal: str | None  # the text to find, when the segment has no `_`


def _segments(pattern: str, escape: str) -> tuple[list[_Segment], bool]:
    """Split a pattern at its unescaped ``%`` into segments; True when it had a ``%``."""
    parts: list[list[tuple[str, str | None]]] = [[]]  # (one-character regex, the character or None for `_`)
    wildcard = False
    chars = iter(pattern)
    for char in chars:
        if char == escape:
            literal = next(chars, escape)
            parts[-1].append((re.escape(literal), literal))
        elif char == "%":
            wildcard = True
            parts.append([])
        elif char == "_":
            parts[-1].append((".", None))
        else:
            parts[-1].append((re.escape(char), char))
    segments = []
    for part in parts:
        chars_only = [char for _, char in part]
        literal = None if None in chars_only else "".join(c for c in chars_only if c is not None)
        segments.append(_Segment(re.compile("".join(rx for rx, _ in part), re.DOTALL), len(part), literal))
    return segments, wildcard


def _find(segment: _Segment, text: str, start: int) -> int | None:
    """The end of the leftmost match of ``segment`` at or after ``start``: -1 for none, None over budget."""
    if segment.literal is not None:
        found = text.find(segment.literal, start)
        return found + segment.width if found >= 0 else -1
    if (len(text) - start) * segment.width > SEARCH_BUDGET:
        return None
    match = segment.regex.search(text, start)
    return match.end() if match else -1


@functools.lru_cache(maxsize=256)
def compile_like(pattern: str, escape: str = "\\") -> Matcher:
    """A function telling whether a string matches the LIKE ``pattern`` (None: too costly to tell)."""
    segments, wildcard = _segments(pattern, escape)
    if not wildcard:
        whole = segments[0].regex
        return lambda text: whole.fullmatch(text) is not None
    first, *middle, last = segments
    middle = [segment for segment in middle if segment.width]

    def matches(text: str) -> bool | None:
        if first.width and first.regex.match(text) is None:
            return False
        position: int | None = first.width
        for segment in middle:
            position = _find(segment, text, position)
            if position is None or position < 0:
                return None if position is None else False
        tail = len(text) - last.width
        if tail < position:
            return False
        return not last.width or last.regex.fullmatch(text, tail) is not None

    return matches
