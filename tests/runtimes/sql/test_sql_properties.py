"""Property: random statements over random payloads never raise outside the envelope path.

A statement either fails to load with a SqlError, or every evaluation returns
bytes (a JSON object, the payload itself for ``select *``, or b"" for nothing);
the only exception evaluate() may raise is a Fault (SPEC §9, issue #5).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefn.runtimes.faults import Fault
from edgefn.runtimes.sql import SqlError, SqlFunction
from edgefn.runtimes.sql.like import compile_like

KEYS = ["a", "b", "c", "x y", "id"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12,
)
payloads = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5).map(orjson.dumps),
    json_values.map(orjson.dumps),
    st.binary(max_size=40),
)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


fields = st.sampled_from(["a", "b", "c", "`x y`", "id", "a.b", "a[0]", "b[1].c", "a['b']", "a[b]", "missing"])
literals = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300).map(repr),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8).map(_quote),
    st.sampled_from(["true", "false", "null"]),
)
message = st.sampled_from(["topic()", "qos()", "CURRENT_TIMESTAMP", "uuid()", "newid()", "topic(2)", "topic(a)"])
atoms = st.one_of(fields, literals, message)

UNARY = ["abs", "ceil", "floor", "round", "sqrt", "lower", "upper", "trim", "ltrim", "rtrim", "length"]
BINARY_FUNCTIONS = ["mod", "power", "round", "coalesce", "concat", "substring"]
OPERATORS = ["+", "-", "*", "/", "%", "=", "<>", "!=", "<", "<=", ">", ">=", "and", "or"]


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["not ", "-"]), inner).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(st.sampled_from(UNARY), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(BINARY_FUNCTIONS), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"substring({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"replace({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(inner, st.lists(inner, min_size=1, max_size=3)).map(lambda t: f"({t[0]} in ({', '.join(t[1])}))"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} between {t[1]} and {t[2]})"),
        st.tuples(inner, st.text(alphabet="ab%_\\.*", max_size=8)).map(lambda t: f"({t[0]} like {_quote(t[1])})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} like {t[1]})"),
        st.tuples(inner, st.sampled_from(["is null", "is not null", "is true"])).map(lambda t: f"({t[0]} {t[1]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"case when {t[0]} then {t[1]} else {t[2]} end"),
        st.tuples(inner, inner, inner).map(lambda t: f"case {t[0]} when {t[1]} then {t[2]} end"),
        st.tuples(inner, inner, inner).map(lambda t: f"if({t[0]}, {t[1]}, {t[2]})"),
    )


expressions = st.recursive(atoms, _compound, max_leaves=10)


@st.composite
def statements(draw: st.DrawFn) -> str:
    columns = draw(st.lists(expressions, min_size=1, max_size=4))
    select = [f"{column} as c{index}" for index, column in enumerate(columns)]
    if draw(st.booleans()):
        select.insert(draw(st.integers(0, len(select))), "*")
    where = draw(st.none() | expressions)
    return "select " + ", ".join(select) + (f" where {where}" if where else "")


def _check_output(out: Any, payload: bytes) -> None:
    assert isinstance(out, bytes)
    if out and out != payload:
        assert isinstance(orjson.loads(out), dict)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statement=statements(), payload_list=st.lists(payloads, min_size=1, max_size=3),
       topic=st.text(max_size=12), qos=st.sampled_from([0, 1]))
def test_random_statements_never_raise_outside_the_envelope_path(
    statement: str, payload_list: list[bytes], topic: str, qos: int
) -> None:
    try:
        fn = SqlFunction.compile("random", statement)
    except SqlError:
        return
    for payload in payload_list:
        try:
            out = fn.evaluate(payload, topic, qos)
        except Fault:
            continue
        _check_output(out, payload)


@settings(max_examples=300, deadline=None)
@given(statement=st.text(max_size=60))
def test_any_text_is_a_sql_error_or_a_function(statement: str) -> None:
    try:
        fn = SqlFunction.compile("text", statement)
    except SqlError as error:
        assert error.function == "text"
        assert str(error)
        return
    try:
        _check_output(fn.evaluate(b'{"a": 1}', "t", 0), b'{"a": 1}')
    except Fault:
        pass


SQL_WORDS = [
    "select", "where", "*", ",", "(", ")", "[", "]", ".", "a", "b", "`x y`", "1", "-2", "1.5", "'s'", "'%a_'",
    "null", "true", "+", "-", "/", "%", "=", "<>", "<", ">=", "and", "or", "not", "in", "like", "between", "is",
    "case", "when", "then", "else", "end", "as", "topic", "qos", "uuid", "abs", "round", "concat", "substring",
    "coalesce", "trim", "leading", "from", "for", "escape", "current_timestamp", "if", "::", "@", "?", "||",
    "div", "exists", "->", "x'41'", "cast", "over", "distinct", "group", "by", "limit",
]  # fmt: skip


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(SQL_WORDS), max_size=14), payload=payloads)
def test_sql_shaped_noise_is_a_sql_error_or_a_function(words: list[str], payload: bytes) -> None:
    try:
        fn = SqlFunction.compile("noise", "select " + " ".join(words))
    except SqlError as error:
        assert "edgefn bug" not in error.message
        return
    try:
        _check_output(fn.evaluate(payload, "a/b", 1), payload)
    except Fault:
        pass


def _like_reference(pattern: str, text: str) -> bool:
    """LIKE as one backtracking regex: exact, and fine on tiny inputs."""
    regex, chars = "", iter(pattern)
    for char in chars:
        if char == "\\":
            regex += re.escape(next(chars, "\\"))
        else:
            regex += {"%": ".*", "_": "."}.get(char, re.escape(char))
    return re.fullmatch(regex, text, re.DOTALL) is not None


@settings(max_examples=2000, deadline=None)
@given(pattern=st.text(alphabet="ab%_\\.", max_size=8), text=st.text(alphabet="ab%_\\.\n", max_size=10))
def test_like_agrees_with_a_backtracking_regex(pattern: str, text: str) -> None:
    assert compile_like(pattern)(text) is _like_reference(pattern, text)
