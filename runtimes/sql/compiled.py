"""The compiled form of an expression: a closure, plus what the compiler knows about it.

Every expression compiles to ``fn(row, topic, qos, now)``: ``row`` is the
message's JSON object ({} when the payload is not one), ``topic`` and ``qos`` the
message's, ``now`` its CURRENT_TIMESTAMP in epoch ms. Operands that are
constant are folded at load, so ``x < 10`` calls one closure for ``x`` and
compares with a plain 10.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import functions as fx

Expr = Callable[[dict[str, Any], str, int, int], Any]


@dataclass(frozen=True)
class Compiled:
    """A compiled expression; a constant one also carries its ``value``."""

    fn: Expr
    const: bool = False
    value: Any = None
    boolean: bool = False  # always True, False or NULL: usable as a condition as is


def constant(value: Any, boolean: bool = False) -> Compiled:
    """An expression whose value is known at load."""
    return Compiled(lambda row, topic, qos, now: value, True, value, boolean)


def apply(op: Callable[..., Any], args: Sequence[Compiled], boolean: bool = False) -> Compiled:
    """``op`` over the operands' values; folded at load when they are all constants."""
    if all(arg.const for arg in args):
        return constant(op(*(arg.value for arg in args)), boolean)
    fns = [arg.fn for arg in args]
    fn: Expr
    if len(args) == 1:
        (f,) = fns
        fn = lambda row, topic, qos, now: op(f(row, topic, qos, now))  # noqa: E731
    elif len(args) == 2 and args[1].const:
        # The common shape `field <op> literal`: one closure call fewer per evaluation.
        f, c = fns[0], args[1].value
        fn = lambda row, topic, qos, now: op(f(row, topic, qos, now), c)  # noqa: E731
    elif len(args) == 2:
        f, g = fns
        fn = lambda row, topic, qos, now: op(f(row, topic, qos, now), g(row, topic, qos, now))  # noqa: E731
    else:
        fn = lambda row, topic, qos, now: op(*[f(row, topic, qos, now) for f in fns])  # noqa: E731
    return Compiled(fn, boolean=boolean)


def condition(compiled: Compiled) -> Compiled:
    """An expression used as a condition: True, False or NULL (numbers: nonzero is true)."""
    return compiled if compiled.boolean else apply(fx.truth, [compiled], boolean=True)
