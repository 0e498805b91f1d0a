"""Compiling a parsed statement into closures, once, at load.

Every expression becomes a closure over its already-compiled operands (see
``compiled.py``): evaluating a message calls closures only, it never looks at a
sqlglot node again. Anything the dialect does not know is a ``SqlError`` naming
it and its position.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from . import calls
from . import functions as fx
from .compiled import Compiled, Expr, apply, condition, constant
from .like import MAX_DYNAMIC_PATTERN, Matcher, compile_like
from .parser import Statement
from .paths import compile_path

# The function names the dialect knows, for the unknown-function error.
SUPPORTED = (
    "abs", "ceil", "coalesce", "concat", "current_timestamp", "floor", "if", "ifnull",
    "length", "lower", "ltrim", "mod", "newid", "power", "qos", "replace", "round",
    "rtrim", "sqrt", "substring", "topic", "trim", "upper", "uuid",
)  # fmt: skip

_UNARY: dict[type[exp.Expression], Callable[[Any], Any]] = {
    exp.Abs: fx.absolute,
    exp.Ceil: fx.ceil,
    exp.Floor: fx.floor,
    exp.Sqrt: fx.sqrt,
    exp.Lower: fx.lower,
    exp.Upper: fx.upper,
    exp.Length: fx.length,
    exp.Neg: fx.negate,
}


class Compiler:
    """Compiles the nodes of one statement; ``uses_now`` tells whether it reads the clock."""

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self.uses_now = False

    def compile(self, node: exp.Expression) -> Compiled:
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            return handler(self, node)
        if isinstance(node, (exp.Column, exp.Dot, exp.Bracket)):
            return self.path(node)
        if isinstance(node, exp.AggFunc):
            raise self.error(f"aggregate function {self.name(node)}() is not supported: each message stands alone", node)
        if isinstance(node, exp.Func):
            raise self.unknown_function(self.name(node), node)
        raise self.error(f"{node.sql(dialect='mysql')} is not supported", node)

    def error(self, message: str, node: exp.Expression) -> Exception:
        return self.statement.error_at(message, node)

    def unknown_function(self, name: str, node: exp.Expression) -> Exception:
        return self.error(f"unknown SQL function {name}(); supported: {', '.join(SUPPORTED)}", node)

    def name(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Anonymous):
            return str(node.name)
        written = self.statement.source(node)
        return written if written and written.replace("_", "").isalnum() else type(node).sql_names()[0].lower()

    def args(self, node: exp.Expression, *keys: str) -> list[Compiled]:
        return [self.compile(node.args[key]) for key in keys if node.args.get(key) is not None]

    def path(self, node: exp.Expression) -> Compiled:
        return Compiled(compile_path(node, self.compile, self.error))

    # -- literals and operators ---------------------------------------------------

    def literal(self, node: exp.Literal) -> Compiled:
        if node.is_string:
            return constant(node.this)
        text = node.this
        try:
            value = fx.number(int(text)) if text.isdigit() else fx.number(float(text))
        except ValueError:  # more digits than Python converts: far beyond any JSON number
            value = None
        if value is None:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise self.error(f"the number {shown} is out of range", node)
        return constant(value)

    def unary(self, node: exp.Expression) -> Compiled:
        return apply(_UNARY[type(node)], [self.compile(node.this)])

    def arithmetic(self, node: exp.Binary) -> Compiled:
        op = fx.ARITHMETIC[type(node).__name__]
        return apply(op, [self.compile(node.this), self.compile(node.expression)])

    def comparison(self, node: exp.Binary) -> Compiled:
        op, ordering = fx.COMPARISONS[type(node).__name__]
        left, right = self.compile(node.this), self.compile(node.expression)
        if right.const and fx.is_number(right.value) and not left.const:
            return apply(fx.compare_with_number(op, ordering, right.value), [left], True)
        return apply(fx.comparison(op, ordering), [left, right], True)

    def logic(self, node: exp.Connector) -> Compiled:
        conjunction = isinstance(node, exp.And)
        left, right = condition(self.compile(node.this)), condition(self.compile(node.expression))
        if left.const and right.const:
            return constant((_and if conjunction else _or)(left.value, right.value), boolean=True)
        return Compiled(_connector(conjunction, left.fn, right.fn), boolean=True)

    def not_(self, node: exp.Not) -> Compiled:
        return apply(_not, [condition(self.compile(node.this))], True)

    def is_(self, node: exp.Is) -> Compiled:
        target = node.expression
        if isinstance(target, exp.Null):
            return apply(lambda value: value is None, [self.compile(node.this)], True)
        if isinstance(target, exp.Boolean):
            truth = target.this is True
            return apply(lambda value: value is truth, [self.compile(node.this)], True)
        raise self.error("IS takes NULL, TRUE or FALSE", target)

    def in_(self, node: exp.In) -> Compiled:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise self.error("IN takes a list of values, (a, b, ...)", node)
        items = [self.compile(item) for item in node.expressions]
        return apply(_member, [self.compile(node.this), *items], True)

    def between(self, node: exp.Between) -> Compiled:
        return apply(_between, self.args(node, "this", "low", "high"), True)

    def like(self, node: exp.Like, escape: str = "\\") -> Compiled:
        subject, pattern = self.compile(node.this), self.compile(node.expression)
        negate = bool(node.args.get("negate"))
        if pattern.const and type(pattern.value) is str:
            matcher = compile_like(pattern.value, escape)
            return apply(lambda text: _match(matcher, text, negate), [subject], True)
        return apply(lambda text, like: _like(text, like, escape, negate), [subject, pattern], True)

    def escape(self, node: exp.Escape) -> Compiled:
        char = node.expression
        if not isinstance(node.this, exp.Like) or not isinstance(char, exp.Literal) or len(char.name) != 1:
            raise self.error("ESCAPE takes one character, after LIKE", node)
        return self.like(node.this, char.name)

    def case(self, node: exp.Case) -> Compiled:
        operand = self.compile(node.this) if node.this is not None else None
        branches = [(self.compile(branch.this), self.compile(branch.args["true"])) for branch in node.args["ifs"]]
        default = self.compile(node.args["default"]) if node.args.get("default") else constant(None)
        return Compiled(_case(operand, branches, default))

    def if_(self, node: exp.If) -> Compiled:
        default = self.compile(node.args["false"]) if node.args.get("false") else constant(None)
        return Compiled(_case(None, [(self.compile(node.this), self.compile(node.args["true"]))], default))

    def paren(self, node: exp.Paren) -> Compiled:
        return self.compile(node.this)


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _connector(conjunction: bool, left: Expr, right: Expr) -> Expr:
    """AND / OR with three-valued logic, evaluating the right side only when needed."""
    stop = not conjunction  # AND stops at False, OR at True

    def connect(row: dict[str, Any], topic: str, qos: int, now: int) -> bool | None:
        a = left(row, topic, qos, now)
        if a is stop:
            return stop
        b = right(row, topic, qos, now)
        if b is stop:
            return stop
        return None if a is None or b is None else not stop

    return connect


def _not(value: bool | None) -> bool | None:
    return None if value is None else not value


_EQ = fx.comparison(operator.eq, False)
_GE = fx.comparison(operator.ge, True)
_LE = fx.comparison(operator.le, True)


def _member(value: Any, *items: Any) -> bool | None:
    """SQL IN: true on a match; else NULL if any comparison was NULL; else false."""
    unknown = False
    for item in items:
        equal = _EQ(value, item)
        if equal:
            return True
        unknown = unknown or equal is None
    return None if unknown else False


def _between(value: Any, low: Any, high: Any) -> bool | None:
    return _and(_GE(value, low), _LE(value, high))


def _match(matcher: Matcher, text: Any, negate: bool) -> bool | None:
    if type(text) is not str:
        return None
    matched = matcher(text)
    return None if matched is None else matched is not negate


def _like(text: Any, pattern: Any, escape: str, negate: bool) -> bool | None:
    """LIKE with a pattern from the message: compiled on first sight (and cached), if not giant."""
    if type(pattern) is not str or len(pattern) > MAX_DYNAMIC_PATTERN:
        return None
    return _match(compile_like(pattern, escape), text, negate)


def _case(operand: Compiled | None, branches: list[tuple[Compiled, Compiled]], default: Compiled) -> Expr:
    """CASE: the first branch whose condition is true (or whose value equals the operand)."""
    tests = [(condition(when).fn if operand is None else when.fn, then.fn) for when, then in branches]
    subject = operand.fn if operand is not None else None
    otherwise = default.fn

    def case(row: dict[str, Any], topic: str, qos: int, now: int) -> Any:
        value = subject(row, topic, qos, now) if subject is not None else None
        for test, then in tests:
            hit = test(row, topic, qos, now)
            if (hit if subject is None else _EQ(value, hit)) is True:
                return then(row, topic, qos, now)
        return otherwise(row, topic, qos, now)

    return case


_Handler = Callable[[Compiler, Any], Compiled]
_HANDLERS: dict[type[exp.Expression], _Handler] = {
    exp.Literal: Compiler.literal,
    exp.Boolean: lambda self, node: constant(node.this is True, boolean=True),
    exp.Null: lambda self, node: constant(None, boolean=True),
    exp.Paren: Compiler.paren,
    **calls.HANDLERS,
    **{kind: Compiler.unary for kind in _UNARY},
    **{kind: Compiler.arithmetic for kind in (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)},
    **{kind: Compiler.comparison for kind in (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)},
    exp.And: Compiler.logic,
    exp.Or: Compiler.logic,
    exp.Not: Compiler.not_,
    exp.Is: Compiler.is_,
    exp.In: Compiler.in_,
    exp.Between: Compiler.between,
    exp.Like: Compiler.like,
    exp.Escape: Compiler.escape,
    exp.Case: Compiler.case,
    exp.If: Compiler.if_,
}
