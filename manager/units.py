"""Sizes and durations as people write them in a config or on a command line.

Sizes take ``b``/``k``/``m``/``g`` (1024-based; ``kb``/``mb``/``gb`` and
``kib``/``mib``/``gib`` are read the same), durations ``ms``/``s``/``m``/``h``
(``us``/``ns`` too, and Go's compound form ``1h30m``, because Baetyl users write
Go durations). Fractions are allowed (``1.5m``); a bare number is bytes or
seconds. Both raise :class:`ValueError` with a message that says what was
expected, which callers put next to the YAML path or the command-line flag.
"""

from __future__ import annotations

import math
import re

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([bkmg]?)(?:i?b)?", re.IGNORECASE)

_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
# One "<number><unit>" step of a (possibly compound) duration; longest units first.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")

SIZE_HINT = "a size like 512k, 4m or 1g (b/k/m/g, 1024-based; a bare number is bytes)"
DURATION_HINT = "a duration like 500ms, 30s, 1.5m or 1h (a bare number is seconds)"


def parse_size(text: object) -> int:
    """Return the number of bytes ``text`` stands for (``"4m"`` → 4194304).

    Accepts an int (bytes) or a string; fractions are rounded down to whole
    bytes. Raises ValueError for anything else, negatives included.
    """
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise ValueError(f"expected {SIZE_HINT}, got {text!r}")
    if isinstance(text, (int, float)):
        return _whole_bytes(float(text), text)
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected {SIZE_HINT}, got {text!r}")
    number, unit = match.groups()
    return _whole_bytes(float(number) * _SIZE_UNITS[unit.lower()], text)


def parse_duration(text: object) -> float:
    """Return the number of seconds ``text`` stands for (``"1.5m"`` → 90.0).

    Accepts an int or float (seconds) or a string such as ``500ms``, ``30s``,
    ``10m``, ``1h`` or ``1h30m``. Raises ValueError for anything else,
    negatives included.
    """
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise ValueError(f"expected {DURATION_HINT}, got {text!r}")
    if isinstance(text, (int, float)):
        return _finite_seconds(float(text), text)
    stripped = text.strip()
    if _NUMBER.fullmatch(stripped):
        return _finite_seconds(float(stripped), text)
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(stripped):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        position = match.end()
    if position == 0 or position != len(stripped):
        raise ValueError(f"expected {DURATION_HINT}, got {text!r}")
    return _finite_seconds(total, text)


def _whole_bytes(value: float, original: object) -> int:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected {SIZE_HINT}, got {original!r}")
    return int(value)


def _finite_seconds(value: float, original: object) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected {DURATION_HINT}, got {original!r}")
    return value
