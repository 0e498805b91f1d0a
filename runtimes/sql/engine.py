"""A SQL function: its statement compiled at load, evaluated per message.

The manager calls ``SqlFunction.compile`` once per function (at load, in
``edgefn check`` too) and ``evaluate`` for every message, in its own process
and on its event loop: evaluation is closures over the parsed payload, bounded
in time and memory, and it never raises anything but a ``Fault``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import exactjson
from ..faults import UNKNOWN_FAULT, UNSERIALIZABLE_RESULT, Fault
from .compiled import Expr, condition
from .compiler import Compiler
from .parser import Column, Query, SqlError, Statement, parse

Run = Callable[[bytes, str, int], bytes]
Columns = tuple[tuple[str, Expr], ...]

# The row of a payload that is not a JSON object: every field is NULL. Never mutated.
_NO_FIELDS: dict[str, Any] = {}


@dataclass(frozen=True)
class SqlFunction:
    """A compiled ``select <exprs> [where <cond>]`` statement."""

    name: str
    statement: str
    keys: tuple[str, ...]  # the output keys of the explicit columns, in order
    _run: Run = field(repr=False, compare=False)

    @classmethod
    def compile(cls, name: str, statement: str) -> SqlFunction:
        """Parse and compile ``statement``; raise ``SqlError`` naming ``name`` if it is wrong."""
        query = parse(name, statement)
        compiler = Compiler(Statement(name, statement))
        try:
            where = condition(compiler.compile(query.where)).fn if query.where is not None else None
            before, after, star = _columns(compiler, query)
        except SqlError:
            raise
        except RecursionError as exc:
            raise SqlError(name, "the statement is nested too deeply") from exc
        except Exception as exc:  # noqa: BLE001 - a load error, never a crash of the manager
            raise SqlError(name, f"cannot compile the statement ({type(exc).__name__}: {exc}); this is an edgefn bug") from exc
        run = _program(where, before, after, star, compiler.uses_now)
        keys = tuple(key for key, _ in before + after)
        return cls(name, statement, keys, run)

    def evaluate(self, payload: bytes, topic: str, qos: int) -> bytes:
        """The JSON output for one message, or b"" when nothing is published.

        A failure (only an engine bug or an unserializable value can fail)
        raises ``Fault``; anything else would be a bug in this method.
        """
        try:
            return self._run(payload, topic, qos)
        except _Unwritable as exc:
            return _dumps_deep(self.name, exc.value)
        except Exception as exc:  # noqa: BLE001 - the manager must only ever see a Fault
            raise Fault(UNKNOWN_FAULT, f"SQL function {self.name} failed: {type(exc).__name__}: {exc}") from exc


class _Unwritable(Exception):
    """An output orjson refuses: nested deeper than its 254 levels, or holding an integer beyond 64 bits."""

    def __init__(self, value: dict[str, Any]) -> None:
        super().__init__("output orjson cannot write")
        self.value = value


def _dumps_deep(name: str, value: dict[str, Any]) -> bytes:
    """The slow path for what orjson refuses: the standard library's encoder."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except (RecursionError, ValueError, TypeError) as exc:
        raise Fault(UNSERIALIZABLE_RESULT, f"SQL function {name}: the output cannot be written as JSON: {exc}") from exc


def _columns(compiler: Compiler, query: Query) -> tuple[Columns, Columns, bool]:
    """The compiled columns before and after ``*``, and whether there is a ``*``."""
    before: list[tuple[str, Expr]] = []
    after: list[tuple[str, Expr]] = []
    star = False
    for column in query.columns:
        if column.node is None:
            star = True
        else:
            (after if star else before).append((_key(column), compiler.compile(column.node).fn))
    return tuple(before), tuple(after), star


def _key(column: Column) -> str:
    assert column.key is not None  # only * has no key
    return column.key


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _program(where: Expr | None, before: Columns, after: Columns, star: bool, uses_now: bool) -> Run:
    """The per-message function: parse, filter, build the output object, serialize."""
    loads, dumps = exactjson.loads, orjson.dumps  # exact: integers beyond 64 bits are read exactly
    decode_error, encode_error = orjson.JSONDecodeError, orjson.JSONEncodeError
    star_only = star and not before and not after
    shadowed = frozenset(key for key, _ in before)

    def run(payload: bytes, topic: str, qos: int) -> bytes:
        row = _NO_FIELDS
        if payload:
            try:
                parsed = loads(payload)
            except decode_error:
                parsed = None
            if type(parsed) is dict:
                row = parsed
        now = _now_ms() if uses_now else 0
        if where is not None and where(row, topic, qos, now) is not True:
            return b""
        if star_only:
            # Republished as is, JSON object or not; an empty payload is {} (SPEC §5).
            return payload or b"{}"
        out = {}  # a plain loop: cheaper than a comprehension's frame for a few columns
        for key, fn in before:
            out[key] = fn(row, topic, qos, now)
        if star and row:
            if shadowed.isdisjoint(row):
                out.update(row)
            else:
                # An explicit column beats the key `*` copies; the key keeps its first place.
                explicit = dict(out)
                out.update(row)
                out.update(explicit)
        for key, fn in after:
            out[key] = fn(row, topic, qos, now)
        try:
            return dumps(out)
        except encode_error:
            raise _Unwritable(out) from None

    return run
