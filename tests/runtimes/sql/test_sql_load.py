"""Load errors: every problem with a statement is a SqlError at load, with the function's
name and the position, never a surprise at the first message (SPEC §9)."""

from __future__ import annotations

import pytest

from edgefn.runtimes.sql import SqlError, SqlFunction


def load_error(statement: str, name: str = "filter") -> SqlError:
    with pytest.raises(SqlError) as caught:
        SqlFunction.compile(name, statement)
    return caught.value


def test_syntax_error_names_the_function_and_the_column() -> None:
    error = load_error("select a +", name="sql-filter")
    assert error.function == "sql-filter"
    assert error.position == 10
    assert str(error).startswith('SQL function "sql-filter" at column 10: syntax error')
    assert str(error).endswith(".")


def test_sql_error_is_a_value_error() -> None:
    assert isinstance(load_error("select ("), ValueError)


def test_syntax_error_on_a_later_line_gives_line_and_column() -> None:
    error = load_error("select a,\n  b\n  where c +")
    assert (error.line, error.position) == (3, 11)
    assert "line 3, column 11" in str(error)


def test_unknown_function_lists_the_supported_ones() -> None:
    error = load_error("select a, frobnicate(a) as f")
    assert error.position == 11
    assert "frobnicate()" in error.message
    for name in ("topic", "qos", "uuid", "newid", "concat", "coalesce", "substring", "power"):
        assert name in error.message


def test_known_sql_but_unsupported_function_is_unknown_here() -> None:
    assert "concat_ws()" in load_error("select concat_ws(',', a)").message


@pytest.mark.parametrize(
    ("statement", "words", "position"),
    [
        ("select a from t", "FROM", 10),
        ("select a group by a", "GROUP BY", 10),
        ("select a order by a", "ORDER BY", 10),
        ("select a limit 1", "LIMIT", 10),
        ("select distinct a", "DISTINCT", 8),
    ],
)
def test_clauses_other_than_where_are_load_errors(statement: str, words: str, position: int) -> None:
    error = load_error(statement)
    assert words in error.message
    assert error.position == position


@pytest.mark.parametrize("statement", ["select sum(a)", "select count(*)", "select max(a) as m"])
def test_aggregates_are_load_errors(statement: str) -> None:
    assert "aggregate" in load_error(statement).message


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        ("select a, b.a", 'output key "a"'),
        ("select a as x, b as x", 'output key "x"'),
        ("select *, *", "* appears twice"),
        ("select t.*", "use *"),
        ("select a; select b", "one statement"),
        ("", "empty"),
        ("   ", "empty"),
        ("delete from t", "expected 'select"),
        ("selec a", "expected 'select"),
        ("select 'abc", "never closed"),
        ("select `abc", "never closed"),
        ("select a in (select 1)", "IN takes a list"),
        ("select a like 'x' escape '!!'", "ESCAPE takes one character"),
        ("select topic(1, 2)", "topic() takes no argument, or the level"),
        ("select qos(1)", "qos() takes no arguments"),
        ("select newid(1)", "newid() takes no arguments"),
        ("select round(a, 1, 2)", "round() takes"),
        ("select substring(a)", "substring() takes"),
        ("select replace(a, 'b')", "replace() takes"),
        ("select trim('x' from a)", "trim() takes"),
        ("select current_timestamp(3)", "takes no arguments"),
        ("select cast(a as char)", "cast()"),
        ("select a::int", "cast()"),
        ("select @v", "is not supported"),
        ("select a is 1", "IS takes"),
        ("select 1e999", "out of range"),
        ("select 1" + "0" * 5000, "out of range"),
        ("select abs(a, b)", "syntax error"),
    ],
)
def test_bad_statements_are_load_errors(statement: str, fragment: str) -> None:
    error = load_error(statement)
    assert fragment in error.message
    assert error.function == "filter"


def test_deeply_nested_statement_is_a_load_error_not_a_crash() -> None:
    error = load_error("select " + "(" * 5000 + "1" + ")" * 5000)
    assert "nested too deeply" in error.message or "syntax error" in error.message


def test_compiled_function_describes_itself() -> None:
    fn = SqlFunction.compile("f", "select qos() as qos, topic() as topic, *, a.b where id < 10")
    assert fn.name == "f"
    assert fn.keys == ("qos", "topic", "b")
