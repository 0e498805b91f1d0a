"""JSON that keeps integers of any size exact, at orjson's speed for everything else.

orjson reads an integer beyond 64 bits as a float and refuses to write one. A
payload can only hold such an integer where it has a run of at least 19 digits
(the shortest is -9223372036854775809), so only those payloads are read again
by the standard library, which keeps them exact; writing falls back to it only
when orjson refuses. Everything else takes orjson's path unchanged.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def loads(data: bytes) -> Any:
    """Parse ``data`` like orjson (raising its JSONDecodeError), integers exact."""
    value = orjson.loads(data)
    if _LONG_DIGITS.search(data) is None:
        return value
    try:
        return json.loads(data, parse_float=_finite, parse_constant=_refuse)
    except (ValueError, RecursionError):  # only where orjson would read it (depth): keep orjson's
        return value


def dumps(value: Any, option: int | None = None) -> bytes:
    """Write ``value`` like orjson; integers beyond 64 bits exactly. Raises TypeError or ValueError."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError:
        # The standard library takes big integers; NaN and infinities stay refused, as orjson's JSON has none.
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"number out of range: {text}")
    return number


def _refuse(text: str) -> float:
    raise ValueError(f"not JSON: {text}")
