"""MQTT topics: filter matching, a connection's subscriptions, and the output topic templates of rules.

A rule's ``publish.topic`` and ``error.topic`` may be templates: ``{N}`` is level
N of the input topic (1-based; a topic starting with ``/`` has an empty level 1,
so ``/owner/udid/status`` has the owner at ``{2}``), ``{topic}`` the whole input
topic, ``{function}`` the function's name, ``{clientid}`` the connection's client
id; ``{{`` and ``}}`` are literal braces. A template is compiled once, when the
config loads, into literal parts and slots, so rendering one per input is a
join: no parsing and no regex on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "CLIENTID", "FUNCTION", "TOPIC", "Subscription", "Template", "TemplateError", "compile_template",
    "filter_depth", "filters_overlap", "invalid_topic", "shared_filter", "strip_shared", "subscriptions",
    "topic_matches",
]

# Slots that are not levels (levels are the ints 1, 2, ...).
TOPIC = 0
FUNCTION = -1
CLIENTID = -2
_NAMED = {"topic": TOPIC, "function": FUNCTION, "clientid": CLIENTID}
_NAMES = {slot: name for name, slot in _NAMED.items()}
# No real subscription reaches this depth; a larger {N} is surely a typo.
_LEVEL_MAX = 1024


class TemplateError(ValueError):
    """A topic template that cannot compile (unknown placeholder, unbalanced brace)."""


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled topic template: literal strings and slots, in order.

    ``parts`` holds ``str`` literals and ``int`` slots (``N ≥ 1`` a level,
    :data:`TOPIC`, :data:`FUNCTION`, :data:`CLIENTID`). ``max_level`` is the
    highest ``{N}`` used (0 for none) and ``uses_topic`` tells whether ``{topic}``
    is used: together they say whether the template reads the input topic at all.
    """

    text: str  # as written
    parts: tuple[str | int, ...]
    max_level: int = 0
    uses_topic: bool = False
    # The topic itself when there is no slot (the common case: no rendering), else None.
    literal: str | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = self.parts
        literal = "" if not parts else parts[0] if len(parts) == 1 and isinstance(parts[0], str) else None
        object.__setattr__(self, "literal", literal)

    @property
    def uses_input(self) -> bool:
        """True when rendering needs the input topic (``{N}`` or ``{topic}``)."""
        return self.max_level > 0 or self.uses_topic

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholder names used, as written without braces (``"2"``, ``"clientid"``)."""
        return frozenset(
            str(part) if part > 0 else _NAMES[part] for part in self.parts if isinstance(part, int)
        )

    def render(self, levels: Sequence[str] | None, topic: str, function: str, clientid: str) -> str | None:
        """The topic for one input; None when it names a level the input lacks.

        ``levels`` is ``topic.split("/")``, computed once per input by the caller
        (and only when :attr:`max_level` is set; None otherwise). The result is
        not checked: :func:`invalid_topic` says whether it may be published.
        """
        out: list[str] = []
        for part in self.parts:
            if type(part) is str:
                out.append(part)
            elif part > 0:
                if levels is None or part > len(levels):
                    return None
                out.append(levels[part - 1])
            elif part == TOPIC:
                out.append(topic)
            elif part == FUNCTION:
                out.append(function)
            else:
                out.append(clientid)
        return "".join(out)


def compile_template(text: str) -> Template:
    """Compile ``text`` once; raises :class:`TemplateError` saying what is wrong and where."""
    parts: list[str | int] = []
    literal: list[str] = []
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char == "{" and text.startswith("{{", index) or char == "}" and text.startswith("}}", index):
            literal.append(char)
            index += 2
        elif char == "}":
            raise TemplateError(f"a lone '}}' at character {index + 1} of {text!r}; write '}}}}' for a literal brace")
        elif char == "{":
            end = text.find("}", index + 1)
            if end < 0 or "{" in text[index + 1:end]:
                raise TemplateError(f"'{{' at character {index + 1} of {text!r} is not closed; "
                                    "write '{{' for a literal brace")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_slot(text[index + 1:end], text))
            index = end + 1
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append("".join(literal))
    levels = [part for part in parts if isinstance(part, int) and part > 0]
    return Template(text, tuple(parts), max(levels, default=0), TOPIC in parts)


def _slot(name: str, text: str) -> int:
    if name in _NAMED:
        return _NAMED[name]
    if name.isdecimal() and name.isascii():
        level = int(name)
        if 1 <= level <= _LEVEL_MAX:
            return level
        raise TemplateError(f"{{{name}}} in {text!r}: levels count from 1 (and up to {_LEVEL_MAX})")
    raise TemplateError(f"unknown placeholder {{{name}}} in {text!r}; expected {{N}} (a level of the "
                        "input topic, from 1), {topic}, {function} or {clientid} ('{{' for a literal brace)")


def invalid_topic(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or None when it can."""
    if not topic:
        return "it is empty"
    if "+" in topic or "#" in topic:
        return "it holds a wildcard (+ or #)"
    if "\0" in topic:
        return "it holds a NUL character"
    if len(topic) > 16383 and len(topic.encode()) > 65535:  # any char is at most 4 bytes
        return "it is longer than 65535 bytes"
    return None


def shared_filter(pattern: str, group: str) -> str:
    """``pattern`` as a shared subscription of ``group`` (as it is if it is shared already)."""
    if strip_shared(pattern) != pattern:
        return pattern
    # A share name is one topic level: no separator and no wildcard.
    name = group.replace("/", "_").replace("+", "_").replace("#", "_") or "edgefn"
    return f"$share/{name}/{pattern}"


def strip_shared(pattern: str) -> str:
    """A filter without its ``$share/<group>/`` or ``$queue/`` prefix (what the broker matches)."""
    if pattern.startswith("$share/"):
        return pattern.split("/", 2)[2] if pattern.count("/") >= 2 else ""
    if pattern.startswith("$queue/"):
        return pattern[len("$queue/"):]
    return pattern


def filter_depth(pattern: str) -> int | None:
    """How many levels every topic matching ``pattern`` has; None when it ends in ``#``."""
    levels = strip_shared(pattern).split("/")
    return None if levels[-1] == "#" else len(levels)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest; ``$share/g/`` and ``$queue/`` ignored)."""
    pattern = strip_shared(pattern)
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False  # wildcards never match $SYS-style topics
    want = pattern.split("/")
    have = topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have) or (level != "+" and level != have[index]):
            return False
    return len(want) == len(have)


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic matches both filters (their ``$share/g/`` or ``$queue/`` prefix ignored)."""
    one, other = strip_shared(first).split("/"), strip_shared(second).split("/")
    for index in range(max(len(one), len(other))):
        mine = one[index] if index < len(one) else None
        theirs = other[index] if index < len(other) else None
        wild = {mine, theirs} & {"+", "#"}
        if wild and index == 0 and any(level and level.startswith("$") for level in (mine, theirs)):
            return False  # a wildcard first level never matches a $SYS-style topic
        if "#" in wild:
            return True  # '#' also matches its parent level: a/# matches a
        if mine is None or theirs is None or (not wild and mine != theirs):
            return False
    return True


def _cover(first: list[str], second: list[str]) -> list[str]:
    """The narrowest filter (as levels) that every topic matching either filter matches."""
    levels: list[str] = []
    for mine, theirs in zip(first, second):
        if "#" in (mine, theirs):
            return [*levels, "#"]
        levels.append(mine if mine == theirs else "+")
    return levels if len(first) == len(second) else [*levels, "#"]


@dataclass(frozen=True)
class Subscription:
    """One filter a connection subscribes to, at ``qos``, for the rules' filters it ``covers``."""

    filter: str
    qos: int
    covers: tuple[str, ...]

    @property
    def broader(self) -> bool:
        """Whether it matches topics that none of the filters it covers matches (``a/+/+``)."""
        return self.filter not in self.covers


def subscriptions(filters: dict[str, int]) -> list[Subscription]:
    """What one connection subscribes to for ``filters`` (filter → QoS), so that an input reaches it once.

    A broker may send a client one copy of a message per matching subscription,
    and with shared subscriptions each filter's group picks its own member, so an
    input matching two filters could reach two workers: each would call every
    rule it matches. Overlapping filters of one kind (plain, or one share
    group) are therefore subscribed as one filter that covers them (``a/#`` and
    ``a/b`` as ``a/#``; ``a/+/c`` and ``a/b/+`` as ``a/+/+``) at the higher QoS.
    The router still matches each input against each rule's own filter, and calls
    it at no more than that filter's QoS.
    """
    kinds: dict[str, list[Subscription]] = {}
    for pattern, qos in filters.items():
        inner = strip_shared(pattern)
        kinds.setdefault(pattern[:len(pattern) - len(inner)], []).append(Subscription(inner, qos, (pattern,)))
    return [Subscription(prefix + merged.filter, merged.qos, merged.covers)
            for prefix, members in kinds.items() for merged in _merge(members)]


def _merge(members: list[Subscription]) -> list[Subscription]:
    """``members`` with every overlapping pair replaced by its cover, until none overlap."""
    done: list[Subscription] = []
    for member in members:
        while (found := next((index for index, other in enumerate(done)
                              if filters_overlap(member.filter, other.filter)), None)) is not None:
            other = done.pop(found)
            member = Subscription("/".join(_cover(member.filter.split("/"), other.filter.split("/"))),
                                  max(member.qos, other.qos), other.covers + member.covers)
        done.append(member)
    return done
