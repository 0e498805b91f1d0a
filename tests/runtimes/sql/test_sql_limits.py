"""Per-message promises beyond the table: the clock, fresh ids, and caps that keep one
hostile message from blocking the manager (SPEC §9)."""

from __future__ import annotations

import json
import time
import uuid

import orjson
import pytest

from edgefn.runtimes.faults import Fault
from edgefn.runtimes.sql import SqlFunction
from edgefn.runtimes.sql.functions import MAX_STRING


def evaluate(statement: str, payload: bytes, topic: str = "t", qos: int = 0) -> dict[str, object]:
    out = SqlFunction.compile("limits", statement).evaluate(payload, topic, qos)
    result = orjson.loads(out)
    assert isinstance(result, dict)
    return result


def test_current_timestamp_is_epoch_ms_decided_once_per_message() -> None:
    before = time.time_ns() // 1_000_000
    out = evaluate("select CURRENT_TIMESTAMP as a, current_timestamp() as b", b"{}")
    after = time.time_ns() // 1_000_000
    assert isinstance(out["a"], int)
    assert before <= out["a"] <= after
    assert out["a"] == out["b"]


def test_current_timestamp_moves_between_messages() -> None:
    fn = SqlFunction.compile("clock", "select CURRENT_TIMESTAMP as now")
    first = orjson.loads(fn.evaluate(b"{}", "t", 0))["now"]
    time.sleep(0.005)  # the clock must advance between two messages; nothing to wait on here
    assert orjson.loads(fn.evaluate(b"{}", "t", 0))["now"] > first


def test_uuid_and_newid_are_fresh_uuids_per_call() -> None:
    fn = SqlFunction.compile("ids", "select uuid() as a, newid() as b")
    one, two = orjson.loads(fn.evaluate(b"{}", "t", 0)), orjson.loads(fn.evaluate(b"{}", "t", 0))
    ids = {one["a"], one["b"], two["a"], two["b"]}
    assert len(ids) == 4
    assert all(uuid.UUID(value).version == 4 for value in ids)


def test_qos_is_the_message_qos_as_delivered() -> None:
    fn = SqlFunction.compile("q", "select qos() as q")
    assert [orjson.loads(fn.evaluate(b"{}", "t", qos))["q"] for qos in (0, 1)] == [0, 1]


def test_giant_strings_are_capped_to_null() -> None:
    big = orjson.dumps({"s": "a" * (MAX_STRING // 4 + 1)})
    started = time.monotonic()
    out = evaluate("select length(concat(s, s, s, s)) as c, replace(s, 'a', s) as r, length(s) as n", big)
    assert out == {"c": None, "r": None, "n": MAX_STRING // 4 + 1}
    assert time.monotonic() - started < 5


def test_like_cannot_backtrack_catastrophically() -> None:
    payload = orjson.dumps({"s": "a" * 200_000})
    started = time.monotonic()
    out = evaluate("select s like '%a%a%a%a%a%a%a%a%b' as m, s like '%a_a%a%' as n", payload)
    assert out == {"m": False, "n": True}
    assert time.monotonic() - started < 2


def test_like_wildcard_segments_are_bounded_not_blocking() -> None:
    # `_` segments cost their width per character searched: past the budget, NULL.
    payload = orjson.dumps({"s": "a" * 1_000_000, "p": "%" + "_" * 1000 + "b%"})
    started = time.monotonic()
    out = evaluate("select s like '%" + "_" * 1000 + "b%' as m, s like p as d, s like '%aab%' as f", payload)
    assert out == {"m": None, "d": None, "f": False}
    assert time.monotonic() - started < 2


def test_like_pattern_from_the_message_is_capped() -> None:
    payload = orjson.dumps({"s": "x", "p": "%" * 100_000})
    assert evaluate("select s like p as m", payload) == {"m": None}


def test_huge_powers_and_overflows_are_null_or_float_never_hang() -> None:
    started = time.monotonic()
    out = evaluate(
        "select power(a, a) as p, power(2, 63) as q, power(2, 64) as r, a * a * a * a as m, round(a, 99999999) as x",
        b'{"a": 9223372036854775807}',
    )
    assert out["p"] is None
    assert out["q"] == 2**63
    assert out["r"] == float(2**64)
    assert isinstance(out["m"], float)
    assert out["x"] == 9223372036854775807
    assert time.monotonic() - started < 2


def test_large_json_numbers_in_the_payload_round_trip() -> None:
    out = evaluate("select a, b, a + 1 as c", b'{"a": 18446744073709551615, "b": -9223372036854775808}')
    assert out == {"a": 2**64 - 1, "b": -(2**63), "c": float(2**64)}


def test_values_deeper_than_orjson_writes_are_still_output() -> None:
    deep = b"[" * 600 + b"]" * 600
    payload = b'{"a": ' + deep + b', "b": ' + deep + b"}"
    out = SqlFunction.compile("deep", "select a = b as same, a").evaluate(payload, "t", 0)
    assert out == b'{"same":true,"a":' + deep + b"}"


def test_values_too_deep_to_compare_compare_as_null() -> None:
    deep = b"[" * 1020 + b"]" * 1020
    payload = b'{"a": ' + deep + b', "b": ' + deep + b"}"
    out = evaluate("select a = b as same, a in (b) as member, concat(a) as text", payload)
    assert out == {"same": None, "member": None, "text": None}


def test_an_output_too_deep_for_any_encoder_is_a_fault() -> None:
    deep = b"[" * 1020 + b"]" * 1020
    with pytest.raises(Fault) as caught:
        SqlFunction.compile("deep", "select a").evaluate(b'{"a": ' + deep + b"}", "t", 0)
    assert caught.value.error_type == "Runtime.UnserializableResult"


def test_deeply_nested_payload_is_not_an_object_but_still_not_an_error() -> None:
    payload = b'{"a":' * 2000 + b"1" + b"}" * 2000
    assert evaluate("select a is null as missing", payload) == {"missing": True}


def test_an_engine_failure_reaches_the_manager_as_a_fault() -> None:
    def broken(payload: bytes, topic: str, qos: int) -> bytes:
        raise KeyError("bug")

    fn = SqlFunction("broken", "select a", ("a",), broken)
    with pytest.raises(Fault) as caught:
        fn.evaluate(b"{}", "t", 0)
    assert caught.value.error_type == "Runtime.Unknown"
    assert "broken" in caught.value.message


@pytest.mark.parametrize("number", [2**64 + 1, -(2**63) - 1, 123456789012345678901234567890])
@pytest.mark.parametrize("statement", ["select *", "select *, 1 as one", "select a, b.c as c",
                                       "select * where a = b.c", "select a where a > 1 or a < 1"])
def test_integers_of_any_size_pass_through_exactly(statement: str, number: int) -> None:
    payload = f'{{"a": {number}, "b": {{"c": {number}}}}}'.encode()
    out = SqlFunction.compile("f", statement).evaluate(payload, "t", 0)
    parsed = json.loads(out)  # the standard library keeps big integers exact
    assert parsed["a"] == number and type(parsed["a"]) is int
    assert str(number).encode() in out
