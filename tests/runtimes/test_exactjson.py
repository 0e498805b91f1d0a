"""Integers of any size survive JSON reading and writing; everything else reads as orjson does."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefn.runtimes import exactjson

BIG = [2**64 + 1, 2**64, -(2**63) - 1, 123456789012345678901234567890, -(10**40)]


@pytest.mark.parametrize("number", BIG)
def test_integers_beyond_64_bits_read_and_write_exactly(number: int) -> None:
    data = f'{{"a": [{number}, "x"], "b": {number}}}'.encode()
    value = exactjson.loads(data)
    assert value == {"a": [number, "x"], "b": number} and type(value["b"]) is int
    assert exactjson.loads(exactjson.dumps(value)) == value
    assert str(number).encode() in exactjson.dumps(value)


def test_a_long_digit_run_inside_a_string_changes_nothing() -> None:
    assert exactjson.loads(b'{"id": "1234567890123456789012", "f": 0.1}') == {"id": "1234567890123456789012",
                                                                                "f": 0.1}


@pytest.mark.parametrize("data", [b"1e400", b"NaN", b"Infinity", b'{"a": 1', b"\xff", b"[1234567890123456789012, NaN]"])
def test_what_orjson_refuses_is_still_refused(data: bytes) -> None:
    with pytest.raises(exactjson.JSONDecodeError):
        exactjson.loads(data)


def test_a_huge_float_beside_a_long_integer_is_refused_like_orjson() -> None:
    with pytest.raises(exactjson.JSONDecodeError):
        exactjson.loads(b"[12345678901234567890123, 1e400]")


def test_nan_is_never_written() -> None:
    with pytest.raises(ValueError):
        exactjson.dumps({"a": math.nan, "b": 2**70})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_any_json_value_round_trips(value: object) -> None:
    assert exactjson.loads(exactjson.dumps(value)) == value


@given(json_values.filter(lambda v: "Integer exceeds" not in _orjson_refusal(v)))
def test_without_big_integers_it_reads_as_orjson(value: object) -> None:
    data = orjson.dumps(value)
    assert exactjson.loads(data) == orjson.loads(data)


def _orjson_refusal(value: object) -> str:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        return str(exc)
    return ""
