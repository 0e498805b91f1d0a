"""The value semantics of the SQL dialect: NULL rules, operators and built-in functions.

Values are JSON values (None, bool, int, float, str, list, dict); None is SQL NULL.
Every function here is total: a NULL argument, an argument of the wrong type, a
division by zero or a result that cannot be represented gives None, never an
exception (SPEC §9). Booleans are not numbers: ``true + 1`` and ``true = 1`` are NULL.
Results that could block the manager's event loop (giant powers, giant strings)
are capped to NULL.
"""

from __future__ import annotations

import math
import operator
import uuid as _uuid
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

import orjson

# The longest string concat() and replace() may build, in characters: beyond it
# the result is NULL, so one message can never make the manager allocate gigabytes.
MAX_STRING = 16 * 1024 * 1024
# Integers stay integers while JSON (orjson) can carry them: signed 64-bit to unsigned 64-bit.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# power() with integers computes exactly only below this many result bits; above, it uses floats.
_EXACT_POWER_BITS = 128
_DECIMAL = Context(prec=800)

Binary = Callable[[Any, Any], Any]


def is_number(value: Any) -> bool:
    """True for int and float, False for bool (booleans are not numbers here)."""
    kind = type(value)
    return kind is int or kind is float


def number(value: int | float) -> int | float | None:
    """Keep a numeric result representable in JSON: big ints become floats, inf becomes NULL."""
    if type(value) is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        try:
            value = float(value)
        except OverflowError:
            return None
    if math.isfinite(value):
        return value
    return None


def truth(value: Any) -> bool | None:
    """A value used as a condition: booleans as is, numbers nonzero, anything else NULL."""
    if value is True or value is False:
        return value
    if is_number(value):
        return value != 0
    return None


# -- comparison --------------------------------------------------------------------

def _comparable(a: Any, b: Any, ordering: bool) -> bool:
    kind_a, kind_b = type(a), type(b)
    if (kind_a is int or kind_a is float) and (kind_b is int or kind_b is float):
        return True
    if kind_a is not kind_b:
        return False
    if kind_a is str or kind_a is bool:
        return True
    # Arrays and objects compare for equality only; NULL compares with nothing.
    return not ordering and (kind_a is list or kind_a is dict)


def comparison(op: Binary, ordering: bool) -> Binary:
    """A SQL comparison: NULL when either side is NULL or the types are incompatible."""

    def compare(a: Any, b: Any) -> bool | None:
        kind_a, kind_b = type(a), type(b)
        # Numbers first, inline: the hot case of a filter (`id < 10`).
        if (kind_a is int or kind_a is float) and (kind_b is int or kind_b is float):
            return op(a, b)  # type: ignore[no-any-return]
        if not _comparable(a, b, ordering):
            return None
        try:
            return bool(op(a, b))
        except RecursionError:  # arrays or objects nested deeper than Python compares
            return None

    return compare


def compare_with_number(op: Binary, ordering: bool, number: int | float) -> Callable[[Any], bool | None]:
    """A comparison with a numeric literal on the right: one call per evaluation."""
    general = comparison(op, ordering)

    def compare(a: Any) -> bool | None:
        kind = type(a)
        if kind is int or kind is float:
            return op(a, number)  # type: ignore[no-any-return]
        return general(a, number)

    return compare


COMPARISONS: dict[str, tuple[Binary, bool]] = {
    "EQ": (operator.eq, False),
    "NEQ": (operator.ne, False),
    "LT": (operator.lt, True),
    "LTE": (operator.le, True),
    "GT": (operator.gt, True),
    "GTE": (operator.ge, True),
}


# -- arithmetic --------------------------------------------------------------------

def add(a: Any, b: Any) -> Any:
    return number(a + b) if is_number(a) and is_number(b) else None


def subtract(a: Any, b: Any) -> Any:
    return number(a - b) if is_number(a) and is_number(b) else None


def multiply(a: Any, b: Any) -> Any:
    return number(a * b) if is_number(a) and is_number(b) else None


def divide(a: Any, b: Any) -> Any:
    """True division: the result is a float (``6 / 2`` is 3.0); by zero, NULL."""
    if is_number(a) and is_number(b) and b != 0:
        return number(a / b)
    return None


def modulo(a: Any, b: Any) -> Any:
    """The remainder with the dividend's sign (MySQL, C), on integers and floats."""
    if not (is_number(a) and is_number(b)) or b == 0:
        return None
    if type(a) is int and type(b) is int:
        rest = abs(a) % abs(b)
        return -rest if a < 0 else rest
    return number(math.fmod(a, b))


def negate(a: Any) -> Any:
    return number(-a) if is_number(a) else None


ARITHMETIC: dict[str, Binary] = {
    "Add": add,
    "Sub": subtract,
    "Mul": multiply,
    "Div": divide,
    "Mod": modulo,
}


# -- numeric functions -------------------------------------------------------------

def absolute(a: Any) -> Any:
    return number(abs(a)) if is_number(a) else None


def ceil(a: Any) -> Any:
    """The smallest integer not below ``a``, as an integer."""
    return number(math.ceil(a)) if is_number(a) else None


def floor(a: Any) -> Any:
    """The largest integer not above ``a``, as an integer."""
    return number(math.floor(a)) if is_number(a) else None


def round_(a: Any, digits: Any = 0) -> Any:
    """Round half away from zero (MySQL); an integer unless ``digits`` > 0."""
    if not is_number(a) or type(digits) is not int:
        return None
    if type(a) is int and digits >= 0:
        return a
    if type(a) is float:
        quick = _round_float(a, digits)
        if quick is not _SLOW:
            return quick
    digits = max(min(digits, 400), -400)
    try:
        exact = Decimal(a) if type(a) is int else Decimal(repr(a))
        rounded = exact.quantize(Decimal(1).scaleb(-digits, _DECIMAL), ROUND_HALF_UP, _DECIMAL)
    except InvalidOperation:
        return None
    if digits > 0:
        return number(float(rounded))
    return number(int(rounded))


_SLOW = object()


def _round_float(a: float, digits: int) -> Any:
    """The fast paths of round() on a float, or ``_SLOW`` for the exact decimal path."""
    if digits == 0:
        # a - floor(a) is exact in binary floating point, so ties are seen exactly.
        whole = math.floor(abs(a))
        whole += abs(a) - whole >= 0.5
        return number(whole if a >= 0 else -whole)
    if digits > 0:
        shown = repr(a)  # the shortest text that reads back as a: what the user sees
        point = shown.find(".")
        if point >= 0 and "e" not in shown and len(shown) - point - 1 <= digits:
            return a  # already no more decimals than asked for
    return _SLOW


def power(a: Any, b: Any) -> Any:
    """``a`` to the ``b``: exact for small integer results, a float otherwise; too big is NULL."""
    if not (is_number(a) and is_number(b)):
        return None
    if type(a) is int and type(b) is int and b >= 0:
        if abs(a) <= 1 or b * a.bit_length() <= _EXACT_POWER_BITS:
            return number(a**b)
    try:
        return number(math.pow(a, b))
    except (OverflowError, ValueError):
        return None


def sqrt(a: Any) -> Any:
    if not is_number(a) or a < 0:
        return None
    try:
        return math.sqrt(a)
    except OverflowError:
        return None


# -- string functions --------------------------------------------------------------

def lower(s: Any) -> Any:
    return s.lower() if type(s) is str else None


def upper(s: Any) -> Any:
    return s.upper() if type(s) is str else None


def trim(s: Any) -> Any:
    """Remove leading and trailing whitespace."""
    return s.strip() if type(s) is str else None


def ltrim(s: Any) -> Any:
    return s.lstrip() if type(s) is str else None


def rtrim(s: Any) -> Any:
    return s.rstrip() if type(s) is str else None


def length(s: Any) -> Any:
    """The number of characters (not bytes) of a string."""
    return len(s) if type(s) is str else None


def text(value: Any) -> str | None:
    """A value inside a string: strings as they are, anything else as its JSON text."""
    if type(value) is str:
        return value
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return None


def concat(*values: Any) -> Any:
    """The values' texts joined; NULL when any is NULL or the result would be giant."""
    parts = [text(value) for value in values if value is not None]
    if len(parts) < len(values) or None in parts:
        return None
    if sum(len(part) for part in parts) > MAX_STRING:  # type: ignore[arg-type]
        return None
    return "".join(parts)  # type: ignore[arg-type]


def substring(s: Any, start: Any, count: Any = None) -> Any:
    """MySQL SUBSTRING: 1-based ``start`` (negative counts from the end, 0 gives '')."""
    if type(s) is not str or type(start) is not int:
        return None
    if count is not None and type(count) is not int:
        return None
    if start > 0:
        begin = start - 1
    elif start < 0 and -start <= len(s):
        begin = len(s) + start
    else:
        return ""
    if count is None:
        return s[begin:]
    return s[begin : begin + count] if count > 0 else ""


def replace(s: Any, old: Any, new: Any) -> Any:
    """Every ``old`` in ``s`` replaced by ``new``; NULL when the result would be giant."""
    if type(s) is not str or type(old) is not str or type(new) is not str:
        return None
    if not old:
        return s
    if len(new) > len(old) and len(s) + s.count(old) * (len(new) - len(old)) > MAX_STRING:
        return None
    return s.replace(old, new)


# -- message functions -------------------------------------------------------------

def topic_level(topic: str, level: Any) -> Any:
    """The ``level``-th level of the topic, 1-based; out of range is NULL."""
    if type(level) is not int or level < 1:
        return None
    levels = topic.split("/")
    return levels[level - 1] if level <= len(levels) else None


def new_uuid() -> str:
    """A random (version 4) UUID in its canonical text form."""
    return str(_uuid.uuid4())
