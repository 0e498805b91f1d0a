"""A YAML document read with positions, so every problem names its path and line.

PyYAML composes the file into nodes that keep their marks; :class:`Section` and
:class:`Value` read those nodes into Python values and record a
:class:`Problem` for everything wrong instead of stopping at the first one.
Scalars are read from their text (``env: {COUNTRY: NO}`` stays ``"NO"``), and
``${VAR}`` is expanded inside a scalar's text only after parsing, so a variable's
value can never add YAML structure.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from .errors import EdgefnError
from .units import DURATION_HINT, SIZE_HINT, parse_duration, parse_size

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})
# "$$" is a literal "$"; "${NAME}" or "${NAME:-default}" a variable; any other "$" stays.
_REFERENCE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a config file."""

    path: str  # "functions[1].instance.max"; "" for the document itself
    line: int | None  # 1-based
    message: str  # what was wrong and what was expected
    file: str | None = None  # the config file as the user named it
    column: int | None = None  # 1-based; set for YAML syntax errors

    def __str__(self) -> str:
        where = [self.file or "config"]
        if self.line is not None:
            where.append(str(self.line))
            if self.column is not None:
                where.append(str(self.column))
        prefix = ":".join(where) + ": "
        return prefix + (f"{self.path}: " if self.path else "") + self.message


class ConfigError(EdgefnError):
    """A config that cannot run: ``str()`` lists every problem, one per line."""

    def __init__(self, problems: Sequence[Problem], warnings: Sequence[Problem] = ()) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.warnings: tuple[Problem, ...] = tuple(warnings)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass
class Document:
    """The state shared while one file is read: where it is, what went wrong."""

    file: str
    folder: Path
    environ: Mapping[str, str]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, path: str, node: yaml.Node | None, message: str) -> None:
        self.problems.append(Problem(path, _line(node), message, self.file))

    def warn(self, path: str, node: yaml.Node | None, message: str) -> None:
        self.warnings.append(Problem(path, _line(node), message, self.file))


# PyYAML composes nodes recursively: a few thousand nested brackets would end in
# a RecursionError. No config is nested anywhere near this deep.
DEPTH_MAX = 100


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses documents nested deeper than ``DEPTH_MAX``."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self._depth >= DEPTH_MAX:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {DEPTH_MAX} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return, arg-type]
        finally:
            self._depth -= 1


def compose(text: str, doc: Document) -> yaml.Node | None:
    """Parse ``text`` into a node tree, or record the syntax error and return None."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        column = mark.column + 1 if mark is not None else None
        line = mark.line + 1 if mark is not None else None
        doc.problems.append(Problem("", line, f"YAML syntax error: {message}", doc.file, column))
    except yaml.YAMLError as exc:
        doc.problems.append(Problem("", None, f"YAML syntax error: {exc}", doc.file))
    return None


def _line(node: yaml.Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"


def is_null(node: yaml.Node) -> bool:
    """True for an empty value, ``~`` or ``null`` written without quotes."""
    return isinstance(node, yaml.ScalarNode) and node.style is None and node.value in _NULLS


@dataclass
class Value:
    """One node of the document at its path."""

    doc: Document
    node: yaml.Node
    path: str

    @property
    def line(self) -> int | None:
        return _line(self.node)

    def error(self, message: str) -> None:
        self.doc.error(self.path, self.node, message)

    def warn(self, message: str) -> None:
        self.doc.warn(self.path, self.node, message)

    def text(self, expected: str = "a string") -> str | None:
        """The scalar's text with ``${VAR}`` expanded; None if null or wrong."""
        if not isinstance(self.node, yaml.ScalarNode):
            self.error(f"expected {expected}, got {_kind(self.node)}")
            return None
        if is_null(self.node):
            return None
        return expand(self.node.value, self.doc.environ, self.error)

    def string(self, *, empty_ok: bool = False) -> str | None:
        text = self.text()
        if text is not None and not text and not empty_ok:
            self.error("must not be empty")
            return None
        return text

    def integer(self, lo: int, hi: int | None = None) -> int | None:
        expected = f"a whole number {_range(lo, hi)}"
        text = self.text(expected)
        if text is None:
            return None
        try:
            number = int(text.strip(), 10)
        except ValueError:
            self.error(f"expected {expected}, got {text!r}")
            return None
        return number if self._within(number, lo, hi, str(number)) else None

    def boolean(self) -> bool | None:
        text = self.text("true or false")
        if text is None:
            return None
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        self.error(f"expected true or false, got {text!r}")
        return None

    def size(self, lo: int, hi: int | None = None) -> int | None:
        text = self.text(SIZE_HINT)
        if text is None:
            return None
        try:
            number = parse_size(text)
        except ValueError as exc:
            self.error(str(exc))
            return None
        return number if self._within(number, lo, hi, text) else None

    def duration(self) -> float | None:
        """A duration in seconds, which must be more than zero."""
        text = self.text(DURATION_HINT)
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            self.error(str(exc))
            return None
        if seconds <= 0:
            self.error(f"must be more than 0, got {text!r}")
            return None
        return seconds

    def choice(self, choices: Sequence[str]) -> str | None:
        expected = "one of " + ", ".join(choices)
        text = self.text(expected)
        if text is None:
            return None
        if text.strip().lower() not in choices:
            self.error(f"expected {expected}, got {text!r}")
            return None
        return text.strip().lower()

    def path_value(self, kind: str) -> Path | None:
        """A path resolved against the config's folder; ``kind`` "dir" or "file" must exist."""
        text = self.string()
        if text is None:
            return None
        resolved = (self.doc.folder / Path(text).expanduser()).resolve()
        if kind == "dir" and not resolved.is_dir():
            self.error(f"expected an existing directory, but {resolved} is not one")
        elif kind == "file" and not resolved.is_file():
            self.error(f"expected an existing file, but {resolved} is not one")
        else:
            return resolved
        return None

    def items(self) -> list[Value]:
        """The entries of a list (an error and no entries for anything else)."""
        if not isinstance(self.node, yaml.SequenceNode):
            self.error(f"expected a list, got {_kind(self.node)}")
            return []
        return [Value(self.doc, item, f"{self.path}[{i}]") for i, item in enumerate(self.node.value)]

    def section(
        self, keys: Iterable[str], baetyl_only: Mapping[str, str] | None = None, example: str = ""
    ) -> Section | None:
        """This value read as a mapping with the given keys (None if it is not one)."""
        if not isinstance(self.node, yaml.MappingNode):
            hint = f" like {example}" if example else ""
            self.error(f"expected a mapping{hint}, got {_kind(self.node)}")
            return None
        return Section(self, tuple(keys), baetyl_only or {})

    def _within(self, number: int, lo: int, hi: int | None, shown: str) -> bool:
        if number < lo or (hi is not None and number > hi):
            self.error(f"must be {_range(lo, hi)}, got {shown}")
            return False
        return True


def _range(lo: int, hi: int | None) -> str:
    return f"at least {lo}" if hi is None else f"between {lo} and {hi}"


class Section:
    """A mapping of known keys; unknown keys are reported when it is opened.

    Keys listed in ``baetyl_only`` (key → why it is ignored) only warn, so a
    Baetyl config loads; no ``keys`` at all means any name goes (``env``). A key
    whose value is null counts as absent.
    """

    def __init__(self, value: Value, keys: tuple[str, ...], baetyl_only: Mapping[str, str]) -> None:
        assert isinstance(value.node, yaml.MappingNode), "Value.section checks the node's kind"
        self.value = value
        self.entries: dict[str, Value] = {}
        self._read(value.node, keys, baetyl_only)

    def _read(self, node: yaml.MappingNode, keys: tuple[str, ...], baetyl: Mapping[str, str]) -> None:
        doc, prefix = self.value.doc, self.value.path + "." if self.value.path else ""
        _check_duplicates(node, doc, prefix)
        try:
            yaml.SafeLoader.flatten_mapping(_FLATTENER, node)  # YAML merge keys (<<)
        except yaml.MarkedYAMLError as exc:
            doc.error(self.value.path, node, f"bad merge key: {exc.problem}")
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                doc.error(prefix.rstrip("."), key_node, f"keys must be names, got {_kind(key_node)}")
                continue
            key, path = key_node.value, prefix + key_node.value
            if key in baetyl:
                doc.warn(path, key_node, f"a Baetyl setting edgefn does not use, ignored: {baetyl[key]}")
            elif keys and key not in keys:
                doc.error(path, key_node, _unknown(key, keys))
            else:
                self.entries[key] = Value(doc, value_node, path)

    @classmethod
    def empty(cls, parent: Value, key: str) -> Section:
        """A section at ``parent``'s ``key`` with no entries yet, for values gathered from elsewhere."""
        node = yaml.MappingNode("tag:yaml.org,2002:map", [], start_mark=parent.node.start_mark)
        return cls(Value(parent.doc, node, f"{parent.path}.{key}" if parent.path else key), (), {})

    def get(self, key: str) -> Value | None:
        """The value of ``key``, or None if it is absent or null."""
        value = self.entries.get(key)
        return None if value is None or is_null(value.node) else value

    def require(self, key: str, what: str) -> Value | None:
        """Like :meth:`get`, but a missing key is reported as ``what`` expected."""
        value = self.get(key)
        if value is None:
            path = f"{self.value.path}.{key}" if self.value.path else key
            self.value.doc.error(path, self.value.node, f"missing; expected {what}")
        return value

    def section(
        self, key: str, keys: Iterable[str], baetyl_only: Mapping[str, str] | None = None, example: str = ""
    ) -> Section | None:
        value = self.get(key)
        return None if value is None else value.section(keys, baetyl_only, example)


# flatten_mapping only needs a constructor instance to call itself recursively.
_FLATTENER = yaml.SafeLoader("")


def _check_duplicates(node: yaml.MappingNode, doc: Document, prefix: str) -> None:
    seen: dict[str, int | None] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        if key_node.value in seen:
            first = seen[key_node.value]
            doc.error(prefix + key_node.value, key_node, f"duplicate key (first at line {first})")
        else:
            seen[key_node.value] = _line(key_node)


def _unknown(key: str, keys: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, keys, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key; {hint}expected one of: {', '.join(keys)}"


def expand(text: str, environ: Mapping[str, str], error: Callable[[str], None]) -> str | None:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$`` in ``text``.

    An unset variable without a default (or a malformed reference) is reported
    through ``error`` and yields None.
    """
    if "$" not in text:
        return text
    failed: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        dollar, inner, unclosed = match.groups()
        if dollar:
            return "$"
        variable = _VARIABLE.fullmatch(inner) if inner is not None else None
        if unclosed or variable is None:
            failed.append(f"bad variable reference {match.group(0)!r}; expected ${{NAME}} or "
                          "${NAME:-default} (write $$ for a literal $)")
            return ""
        name, default = variable.groups()
        if environ.get(name):
            return environ[name]
        if default is not None:  # like the shell's ${NAME:-default}: unset or empty
            return default
        if name in environ:
            return ""
        failed.append(f"environment variable {name} is not set "
                      f"(set it, or write ${{{name}:-default}} for a default)")
        return ""

    expanded = _REFERENCE.sub(substitute, text)
    for message in failed:
        error(message)
    return None if failed else expanded


T = TypeVar("T")


def read_key(section: Section | None, key: str, read: Callable[[Value], T | None], default: T) -> T:
    """``read`` the key's value; ``default`` when absent or wrong (wrong is already reported)."""
    value = section.get(key) if section is not None else None
    result = read(value) if value is not None else None
    return default if result is None else result


def items_of(value: Value | None) -> list[Value]:
    """The entries of an optional list (none when absent)."""
    return value.items() if value is not None else []
