"""Field paths: ``a``, ``a.b.c``, ``a[0]``, ``a['key']``, ``a[i]``, compiled to getters.

A step that does not fit the value (a key on a non-object, an index on a
non-array or out of range) gives NULL: a missing field is NULL, never an error.
Indexes are 0-based, like JSON arrays; there are no negative indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from .compiled import Compiled, Expr

Step = Callable[[Any, dict[str, Any], str, int, int], Any]
CompileFn = Callable[[exp.Expression], Compiled]
ErrorFn = Callable[[str, exp.Expression], Exception]


def compile_path(node: exp.Expression, compile: CompileFn, error: ErrorFn) -> Expr:
    """A getter for the path ``node`` (a Column, Dot or Bracket)."""
    root, steps = _steps(node, compile, error)
    if root is None and all(isinstance(step, str) for step in steps):
        return _keys([str(step) for step in steps])
    fns = [step if callable(step) else _step(step) for step in steps]
    start: Expr = root if root is not None else (lambda row, topic, qos, now: row)

    def get(row: dict[str, Any], topic: str, qos: int, now: int) -> Any:
        value = start(row, topic, qos, now)
        for fn in fns:
            if value is None:
                return None
            value = fn(value, row, topic, qos, now)
        return value

    return get


def _steps(node: exp.Expression, compile: CompileFn, error: ErrorFn) -> tuple[Expr | None, list[Any]]:
    """The path as (root expression or None for the message, steps: keys, indexes, getters)."""
    if isinstance(node, exp.Column):
        return None, [part.name for part in node.parts]
    if isinstance(node, exp.Dot):
        if not isinstance(node.expression, exp.Identifier):
            raise error(f"{node.sql(dialect='mysql')} is not a field path", node)
        root, steps = _steps(node.this, compile, error)
        return root, [*steps, node.expression.name]
    if isinstance(node, exp.Bracket):
        if len(node.expressions) != 1:
            raise error("an index takes one value, as in a[0]", node)
        root, steps = _steps(node.this, compile, error)
        index = compile(node.expressions[0])
        if not index.const:
            return root, [*steps, _dynamic(index.fn)]
        if type(index.value) in (int, str):
            return root, [*steps, index.value]
        return root, [*steps, lambda value, row, topic, qos, now: None]
    return compile(node).fn, []


def _keys(keys: list[str]) -> Expr:
    # The hot shapes (`x`, `a.b`) get closures without a loop.
    if len(keys) == 1:
        (key,) = keys
        return lambda row, topic, qos, now: row.get(key)
    if len(keys) == 2:
        first, second = keys

        def get2(row: dict[str, Any], topic: str, qos: int, now: int) -> Any:
            value = row.get(first)
            return value.get(second) if type(value) is dict else None

        return get2

    def get(row: dict[str, Any], topic: str, qos: int, now: int) -> Any:
        value: Any = row
        for key in keys:
            if type(value) is not dict:
                return None
            value = value.get(key)
        return value

    return get


def _step(key: int | str) -> Step:
    if type(key) is str:
        return lambda value, row, topic, qos, now: value.get(key) if type(value) is dict else None
    return lambda value, row, topic, qos, now: _index(value, key)


def _index(value: Any, index: Any) -> Any:
    if type(value) is list and type(index) is int and 0 <= index < len(value):
        return value[index]
    if type(value) is dict and type(index) is str:
        return value.get(index)
    return None


def _dynamic(index: Expr) -> Step:
    return lambda value, row, topic, qos, now: _index(value, index(row, topic, qos, now))
