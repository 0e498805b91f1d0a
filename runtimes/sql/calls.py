"""SQL function calls: ``topic()``, ``qos()``, ``uuid()``, ``round(x, 2)``, ...

Each handler checks its arguments at load (a wrong count is a ``SqlError``) and
returns a closure. The message functions read the closure's arguments;
``CURRENT_TIMESTAMP`` reads ``now``, which the engine computes once per message
and only for statements that use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from . import functions as fx
from .compiled import Compiled, apply, constant

if TYPE_CHECKING:
    from .compiler import Compiler

Handler = Callable[["Compiler", Any], Compiled]


def anonymous(compiler: Compiler, node: exp.Anonymous) -> Compiled:
    """The functions sqlglot does not know: topic(), topic(n), qos(), newid()."""
    name = node.name.lower()
    args = node.expressions
    if name == "topic" and args:
        if len(args) > 1:
            raise compiler.error("topic() takes no argument, or the level to read: topic(2)", node)
        return _topic_level(compiler, args[0])
    if name in _MESSAGE:
        if args:
            raise compiler.error(f"{name}() takes no arguments", node)
        return Compiled(_MESSAGE[name])
    raise compiler.unknown_function(node.name, node)


def _topic_level(compiler: Compiler, arg: exp.Expression) -> Compiled:
    level = compiler.compile(arg)
    if level.const:
        n = level.value
        return Compiled(lambda row, topic, qos, now: fx.topic_level(topic, n))
    fn = level.fn
    return Compiled(lambda row, topic, qos, now: fx.topic_level(topic, fn(row, topic, qos, now)))


_MESSAGE: dict[str, Callable[[dict[str, Any], str, int, int], Any]] = {
    "topic": lambda row, topic, qos, now: topic,
    "qos": lambda row, topic, qos, now: qos,
    "newid": lambda row, topic, qos, now: fx.new_uuid(),
}


def uuid(compiler: Compiler, node: exp.Uuid) -> Compiled:
    if any(node.args.values()):
        raise compiler.error("uuid() takes no arguments", node)
    return Compiled(_MESSAGE["newid"])


def current_timestamp(compiler: Compiler, node: exp.CurrentTimestamp) -> Compiled:
    if node.this is not None:
        raise compiler.error("CURRENT_TIMESTAMP takes no arguments", node)
    compiler.uses_now = True
    return Compiled(lambda row, topic, qos, now: now)


def round_(compiler: Compiler, node: exp.Round) -> Compiled:
    if node.args.get("truncate") is not None:
        raise compiler.error("round() takes one or two arguments", node)
    return apply(fx.round_, compiler.args(node, "this", "decimals"))


def power(compiler: Compiler, node: exp.Pow) -> Compiled:
    return apply(fx.power, compiler.args(node, "this", "expression"))


def concat(compiler: Compiler, node: exp.Concat) -> Compiled:
    return apply(fx.concat, [compiler.compile(arg) for arg in node.expressions])


def substring(compiler: Compiler, node: exp.Substring) -> Compiled:
    if node.args.get("start") is None:
        raise compiler.error("substring() takes a string, a start and optionally a length", node)
    return apply(fx.substring, compiler.args(node, "this", "start", "length"))


def replace(compiler: Compiler, node: exp.Replace) -> Compiled:
    if node.args.get("replacement") is None:
        raise compiler.error("replace() takes three arguments: a string, what to find, what to put", node)
    return apply(fx.replace, compiler.args(node, "this", "expression", "replacement"))


_TRIMS = {None: fx.trim, "BOTH": fx.trim, "LEADING": fx.ltrim, "TRAILING": fx.rtrim}


def trim(compiler: Compiler, node: exp.Trim) -> Compiled:
    position = node.args.get("position")
    if node.expression is not None or node.args.get("collation") or position not in _TRIMS:
        raise compiler.error("trim() takes one string (it removes whitespace)", node)
    return apply(_TRIMS[position], [compiler.compile(node.this)])


def coalesce(compiler: Compiler, node: exp.Coalesce) -> Compiled:
    """The first argument that is not NULL; the later ones are evaluated only if needed."""
    args = [compiler.compile(arg) for arg in [node.this, *node.expressions]]
    if all(arg.const for arg in args):
        return constant(next((arg.value for arg in args if arg.value is not None), None))
    fns = [arg.fn for arg in args]

    def first(row: dict[str, Any], topic: str, qos: int, now: int) -> Any:
        for fn in fns:
            value = fn(row, topic, qos, now)
            if value is not None:
                return value
        return None

    return Compiled(first)


HANDLERS: dict[type[exp.Expression], Handler] = {
    exp.Anonymous: anonymous,
    exp.Uuid: uuid,
    exp.CurrentTimestamp: current_timestamp,
    exp.Round: round_,
    exp.Pow: power,
    exp.Concat: concat,
    exp.Substring: substring,
    exp.Replace: replace,
    exp.Trim: trim,
    exp.Coalesce: coalesce,
}
