"""The SQL dialect's semantics as a table: (payload, statement, expected output or nothing).

Each row is one promise of SPEC §9 / docs/sql.md. ``expected`` is a list of
(key, value) pairs so that the output's key order is checked too; ``NOTHING``
means nothing is published; bytes mean the output is exactly those bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from edgefn.runtimes.sql import SqlFunction

NOTHING = None
DOCS = "select qos() as qos, topic() as topic, * where id < 10"

CASES: list[tuple[str, bytes, str, Any]] = [
    # -- Baetyl's documented example --------------------------------------------------
    ("docs example passes", b'{"id": 1, "name": "x"}', DOCS, [("qos", 1), ("topic", "a/b/c"), ("id", 1), ("name", "x")]),
    ("docs example filters", b'{"id": 10}', DOCS, NOTHING),
    ("docs example: missing id is NULL, filtered", b'{"name": "x"}', DOCS, NOTHING),
    ("docs example: explicit column beats *", b'{"id": 2, "qos": 9, "topic": "z"}', DOCS,
     [("qos", 1), ("topic", "a/b/c"), ("id", 2)]),
    # -- select list --------------------------------------------------------------------
    ("star alone republishes the bytes as is", b'{"b": 1,  "a": 2}', "select *", b'{"b": 1,  "a": 2}'),
    ("star alone republishes a non-object", b"[1, 2]", "select *", b"[1, 2]"),
    ("star alone republishes non-JSON", b"\x00\xffbinary", "select *", b"\x00\xffbinary"),
    ("empty payload is {}", b"", "select *", b"{}"),
    ("star with a where clause", b"plain text", "select * where qos() = 1", b"plain text"),
    ("fields of a non-object are NULL", b'"text"', "select a, qos() as q", [("a", None), ("q", 1)]),
    ("star on a non-object copies nothing", b"[1]", "select *, qos() as q", [("q", 1)]),
    ("field", b'{"a": 1, "b": 2}', "select b", [("b", 2)]),
    ("missing field is null", b'{"a": 1}', "select a, z", [("a", 1), ("z", None)]),
    ("keys follow the select list", b'{"a": 1, "b": 2, "c": 3}', "select c, a, b", [("c", 3), ("a", 1), ("b", 2)]),
    ("nested path", b'{"a": {"b": {"c": 5}}}', "select a.b.c", [("c", 5)]),
    ("deep nested path", b'{"a": {"b": {"c": {"d": {"e": 6}}}}}', "select a.b.c.d.e as v", [("v", 6)]),
    ("path through a non-object is null", b'{"a": 3}', "select a.b.c", [("c", None)]),
    ("array index is 0-based", b'{"a": [10, 20]}', "select a[0], a[1], a[2]", [("a[0]", 10), ("a[1]", 20), ("a[2]", None)]),
    ("index then field", b'{"a": [{"b": true}]}', "select a[0].b", [("b", True)]),
    ("string index is a key", b'{"m": {"x.y": 4}}', "select m['x.y'] as v", [("v", 4)]),
    ("index from a field", b'{"a": ["p", "q"], "i": 1}', "select a[i] as v", [("v", "q")]),
    ("backquoted identifiers", b'{"my key": {"x-y": 1}}', "select `my key`.`x-y`", [("x-y", 1)]),
    ("keyword field backquoted", b'{"key": 1}', "select `key`", [("key", 1)]),
    ("alias", b'{"a": 1}', "select a as b", [("b", 1)]),
    ("expression key is its text", b'{"a": 1}', "select a+1, a * 2", [("a+1", 2), ("a * 2", 2)]),
    ("explicit column after * keeps the * place", b'{"a": "x", "b": 1}', "select *, upper(a) as a",
     [("a", "X"), ("b", 1)]),
    ("alias before *", b'{"a": "x", "b": 1}', "select upper(a) as a, *", [("a", "X"), ("b", 1)]),
    ("where reads fields, not aliases", b'{"a": 1, "b": 0}', "select a + 1 as b where b > 1", NOTHING),
    ("select reads fields, not aliases", b'{"a": 1}', "select 5 as a, a as b", [("a", 5), ("b", 1)]),
    ("booleans stay booleans", b'{"a": true}', "select a, a = true as t, 1 > 2 as f", [("a", True), ("t", True), ("f", False)]),
    ("objects and arrays pass through", b'{"o": {"k": [1, {"z": null}]}}', "select o", [("o", {"k": [1, {"z": None}]})]),
    # -- arithmetic ---------------------------------------------------------------------
    ("+ - *", b'{"a": 7, "b": 2}', "select a + b as s, a - b as d, a * b as p", [("s", 9), ("d", 5), ("p", 14)]),
    ("/ is true division", b'{"a": 7}', "select a / 2 as h, 6 / 2 as i", [("h", 3.5), ("i", 3.0)]),
    ("division by zero is null", b'{"a": 7}', "select a / 0 as x, a % 0 as y", [("x", None), ("y", None)]),
    ("% takes the dividend's sign", b"{}", "select -7 % 3 as a, 7 % -3 as b, 7.5 % 2 as c", [("a", -1), ("b", 1), ("c", 1.5)]),
    ("arithmetic on a string is null", b'{"s": "1"}', "select s + 1 as x", [("x", None)]),
    ("arithmetic on a boolean is null", b'{"t": true}', "select t + 1 as x", [("x", None)]),
    ("arithmetic on null is null", b"{}", "select z * 2 as x", [("x", None)]),
    ("unary minus", b'{"a": 3}', "select -a as n", [("n", -3)]),
    ("64-bit overflow becomes a float", b'{"a": 9223372036854775807}', "select a * a as x", [("x", 8.507059173023462e37)]),
    # -- comparison and logic -----------------------------------------------------------
    ("comparisons", b'{"a": 2}', "select a = 2 as e, a <> 2 as n, a != 3 as m, a < 3 as l, a <= 2 as le, a > 2 as g, a >= 3 as ge",
     [("e", True), ("n", False), ("m", True), ("l", True), ("le", True), ("g", False), ("ge", False)]),
    ("int equals float", b'{"a": 2}', "select a = 2.0 as e", [("e", True)]),
    ("strings compare", b'{"s": "b"}', "select s > 'a' as g, s = 'b' as e", [("g", True), ("e", True)]),
    ("incompatible comparison is null", b'{"s": "1", "t": true}', "select s = 1 as a, t = 1 as b, s < 2 as c",
     [("a", None), ("b", None), ("c", None)]),
    ("arrays compare for equality only", b'{"l": [1]}', "select l = l as e, l < l as o", [("e", True), ("o", None)]),
    ("comparison with null is null", b"{}", "select z = 1 as a, null = null as b", [("a", None), ("b", None)]),
    ("AND OR NOT", b'{"a": 1}', "select a = 1 and a < 2 as x, a = 2 or a = 1 as y, not a = 1 as z", [("x", True), ("y", True), ("z", False)]),
    ("three-valued logic", b"{}", "select z and false as a, z or true as b, z and true as c, not z as d",
     [("a", False), ("b", True), ("c", None), ("d", None)]),
    ("where false publishes nothing", b'{"a": 1}', "select a where a = 2", NOTHING),
    ("where null publishes nothing", b'{"a": 1}', "select a where z = 1", NOTHING),
    ("where a number: nonzero is true", b'{"a": 1, "b": 0}', "select a where a", [("a", 1)]),
    ("where zero is false", b'{"b": 0}', "select b where b", NOTHING),
    ("where a string is null", b'{"s": "yes"}', "select s where s", NOTHING),
    ("where a boolean field", b'{"on": true}', "select `on` where `on`", [("on", True)]),
    # -- IN, BETWEEN, LIKE, IS NULL, CASE -------------------------------------------------
    ("IN", b'{"a": 2}', "select a in (1, 2) as i, a in (3, 4) as o, a not in (3) as n", [("i", True), ("o", False), ("n", True)]),
    ("IN with a null member", b'{"a": 2}', "select a in (3, null) as i", [("i", None)]),
    ("IN with strings", b'{"s": "b"}', "select s in ('a', 'b') as i", [("i", True)]),
    ("BETWEEN", b'{"a": 5}', "select a between 1 and 5 as b, a not between 6 and 9 as n", [("b", True), ("n", True)]),
    ("LIKE % and _", b'{"s": "hello"}', "select s like 'h_l%' as a, s like '%lo' as b, s like 'h%x' as c, s like 'hello' as d",
     [("a", True), ("b", True), ("c", False), ("d", True)]),
    ("LIKE is case-sensitive", b'{"s": "Hello"}', "select s like 'h%' as a", [("a", False)]),
    ("LIKE escapes", b'{"s": "50%", "t": "a_b"}', r"select s like '50\%' as a, t like 'a\_b' as b, s like '5!%' escape '!' as c",
     [("a", True), ("b", True), ("c", False)]),
    ("LIKE regex characters are literal", b'{"s": "a.c"}', "select s like 'a.c' as a, 'abc' like 'a.c' as b", [("a", True), ("b", False)]),
    ("NOT LIKE and LIKE on non-string", b'{"s": "x", "n": 1}', "select s not like 'y%' as a, n like '1' as b", [("a", True), ("b", None)]),
    ("LIKE with a pattern from the message", b'{"s": "abc", "p": "a%"}', "select s like p as m", [("m", True)]),
    ("IS NULL", b'{"a": null, "b": 0}', "select a is null as x, b is null as y, z is not null as w", [("x", True), ("y", False), ("w", False)]),
    ("IS TRUE", b'{"a": true}', "select a is true as x, a is false as y", [("x", True), ("y", False)]),
    ("searched CASE", b'{"t": 35}', "select case when t > 30 then 'hot' when t > 10 then 'mild' else 'cold' end as c", [("c", "hot")]),
    ("simple CASE", b'{"n": 2}', "select case n when 1 then 'one' when 2 then 'two' end as c", [("c", "two")]),
    ("CASE without a match is null", b'{"n": 5}', "select case n when 1 then 'one' end as c", [("c", None)]),
    ("if()", b'{"a": 2}', "select if(a > 1, 'y', 'n') as r", [("r", "y")]),
    # -- message functions ----------------------------------------------------------------
    ("topic and qos", b"{}", "select topic(), qos()", [("topic()", "a/b/c"), ("qos()", 1)]),
    ("topic levels are 1-based", b"{}", "select topic(1) as a, topic(3) as c, topic(4) as d, topic(0) as z",
     [("a", "a"), ("c", "c"), ("d", None), ("z", None)]),
    ("topic level from a field", b'{"n": 2}', "select topic(n) as t", [("t", "b")]),
    ("where on the topic", b'{"a": 1}', "select a where topic(2) = 'x'", NOTHING),
    # -- numeric functions ----------------------------------------------------------------
    ("abs", b'{"a": -3.5}', "select abs(a) as x, abs(-2) as y", [("x", 3.5), ("y", 2)]),
    ("ceil and floor give integers", b'{"a": 1.2}', "select ceil(a) as c, floor(a) as f, ceil(-1.5) as n", [("c", 2), ("f", 1), ("n", -1)]),
    ("round half away from zero", b"{}", "select round(2.5) as a, round(-2.5) as b, round(1.005, 2) as c, round(1234, -2) as d",
     [("a", 3), ("b", -3), ("c", 1.01), ("d", 1200)]),
    ("mod works on floats", b"{}", "select mod(7.5, 2) as a, mod(-7, 3) as b, mod(1, 0) as c", [("a", 1.5), ("b", -1), ("c", None)]),
    ("power", b"{}", "select power(2, 10) as a, power(2, 0.5) as b, power(2, -1) as c", [("a", 1024), ("b", 2**0.5), ("c", 0.5)]),
    ("huge power is null", b"{}", "select power(10, 100000) as a, power(-8, 1/3) as b", [("a", None), ("b", None)]),
    ("sqrt", b"{}", "select sqrt(16) as a, sqrt(-1) as b, sqrt('x') as c", [("a", 4.0), ("b", None), ("c", None)]),
    # -- string functions -----------------------------------------------------------------
    ("lower upper", b'{"s": "MiX"}', "select lower(s) as l, upper(s) as u", [("l", "mix"), ("u", "MIX")]),
    ("trim ltrim rtrim", b'{"s": "  x  "}', "select trim(s) as t, ltrim(s) as l, rtrim(s) as r", [("t", "x"), ("l", "x  "), ("r", "  x")]),
    ("concat", b'{"s": "a", "n": 1}', "select concat(s, '-', n, true) as c", [("c", "a-1true")]),
    ("concat with null is null", b'{"s": "a"}', "select concat(s, z) as c", [("c", None)]),
    ("length counts characters", '{"s": "héllo"}'.encode(), "select length(s) as n, length(1) as m", [("n", 5), ("m", None)]),
    ("substring is 1-based", b'{"s": "hello"}', "select substring(s, 2) as a, substring(s, 2, 3) as b, substring(s, -3) as c, substring(s, 0) as d",
     [("a", "ello"), ("b", "ell"), ("c", "llo"), ("d", "")]),
    ("replace", b'{"s": "a-b-c"}', "select replace(s, '-', '+') as r", [("r", "a+b+c")]),
    ("coalesce", b'{"b": 2}', "select coalesce(a, b, 3) as c, coalesce(a, z) as n", [("c", 2), ("n", None)]),
]


def run(statement: str, payload: bytes, topic: str = "a/b/c", qos: int = 1) -> bytes:
    return SqlFunction.compile("case", statement).evaluate(payload, topic, qos)


@pytest.mark.parametrize(("payload", "statement", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_case(payload: bytes, statement: str, expected: Any) -> None:
    out = run(statement, payload)
    if expected is NOTHING:
        assert out == b""
    elif isinstance(expected, bytes):
        assert out == expected
    else:
        assert list(orjson.loads(out).items()) == expected


def test_the_table_has_at_least_fifty_cases() -> None:
    assert len(CASES) >= 50
