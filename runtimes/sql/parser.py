"""Reading a SQL function's statement: sqlglot (MySQL dialect) at load, once.

``parse`` turns ``select <exprs> [where <cond>]`` into a ``Query``: the select
list with each column's output key, and the WHERE condition, still as sqlglot
nodes for the compiler. Everything that can be wrong with the statement's shape
(a syntax error, FROM, GROUP BY, two columns with one key) is a ``SqlError``
here, with the position in the statement.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

_DIALECT = Dialect.get_or_raise("mysql")

# Clauses a Select may carry besides its list and WHERE, named for the error message.
_CLAUSES = {
    "from_": ("from", "FROM (the message is the row)"),
    "joins": ("join", "JOIN"),
    "group": ("group", "GROUP BY"),
    "having": ("having", "HAVING"),
    "order": ("order", "ORDER BY"),
    "limit": ("limit", "LIMIT"),
    "offset": ("offset", "OFFSET"),
    "distinct": ("distinct", "DISTINCT"),
    "windows": ("window", "WINDOW"),
    "qualify": ("qualify", "QUALIFY"),
    "into": ("into", "INTO"),
    "with_": ("with", "WITH"),
    "laterals": ("lateral", "LATERAL"),
    "locks": ("for", "FOR UPDATE"),
}
_NEWLINE = re.compile(r"\r\n|\r|\n")
_MISSING = re.compile(r"Required keyword: '\w+' missing for <class '[\w.]+'>")


class SqlError(ValueError):
    """A SQL function's statement that cannot be loaded.

    ``function`` is the function's name, ``message`` says what is wrong,
    ``position`` is the 1-based column in the statement (None when unknown) and
    ``line`` its 1-based line.
    """

    def __init__(self, function: str, message: str, position: int | None = None, line: int = 1) -> None:
        self.function = function
        self.message = message
        self.position = position
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.position is not None:
            where = f" at line {self.line}, column {self.position}" if self.line > 1 else f" at column {self.position}"
        end = "" if self.message.endswith((".", "?")) else "."
        return f'SQL function "{self.function}"{where}: {self.message}{end}'


@dataclass(frozen=True)
class Column:
    """One entry of the select list: ``node`` None is ``*``, which has no ``key``."""

    key: str | None
    node: exp.Expression | None
    start: int | None


@dataclass(frozen=True)
class Query:
    """A parsed statement: the select list in order and the WHERE condition, if any."""

    columns: tuple[Column, ...]
    where: exp.Expression | None


def lines(text: str) -> list[str]:
    """The statement's lines, split where sqlglot counts a new line (\\n, \\r\\n, \\r)."""
    return _NEWLINE.split(text)


class Statement:
    """A statement's text, to turn character offsets into positions for ``SqlError``."""

    def __init__(self, function: str, text: str) -> None:
        self.function = function
        self.text = text
        self.line_starts = [0, *(match.end() for match in _NEWLINE.finditer(text))]

    def error(self, message: str, start: int | None = None) -> SqlError:
        """A ``SqlError`` at the 0-based character offset ``start`` (None: no position)."""
        if start is None:
            return SqlError(self.function, message)
        line = bisect.bisect_right(self.line_starts, start)
        return SqlError(self.function, message, start - self.line_starts[line - 1] + 1, line)

    def error_at(self, message: str, node: exp.Expression | None) -> SqlError:
        """A ``SqlError`` at the first character of ``node`` that sqlglot located."""
        return self.error(message, start_of(node))

    def source(self, node: exp.Expression) -> str | None:
        """The text of a located node (a function's name, an identifier) as written."""
        meta = node.meta
        if "start" in meta and "end" in meta:
            return self.text[meta["start"] : meta["end"] + 1]
        return None


def start_of(node: exp.Expression | None) -> int | None:
    """The smallest character offset sqlglot recorded inside ``node``."""
    if node is None:
        return None
    starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
    return min(starts) if starts else None


def parse(function: str, text: str) -> Query:
    """Parse one ``select <exprs> [where <cond>]`` statement; raise ``SqlError``."""
    statement = Statement(function, text)
    tokens = _tokenize(statement)
    select = _parse_select(statement, tokens)
    for arg, (keyword, name) in _CLAUSES.items():
        if select.args.get(arg):
            raise statement.error(f"{name} is not supported", _keyword(text, keyword, start_of(select.args[arg])))
    texts = _column_texts(text, tokens, len(select.expressions))
    columns = tuple(_column(statement, node, source) for node, source in zip(select.expressions, texts))
    _check_keys(statement, columns)
    where = select.args.get("where")
    return Query(columns, where.this if where is not None else None)


def _keyword(text: str, keyword: str, before: int | None) -> int | None:
    """Where the clause's keyword starts: the last one before the clause's first located node."""
    found = text.lower().rfind(keyword, 0, len(text) if before is None else before)
    return found if found >= 0 else before


def _tokenize(statement: Statement) -> list[Token]:
    try:
        return _DIALECT.tokenize(statement.text)
    except TokenError as exc:
        opened = _open_quote(statement.text)
        if opened is not None:
            raise statement.error(f"the quote {statement.text[opened]} is never closed", opened) from exc
        raise statement.error(f"cannot read the statement: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - see _parse_select
        raise statement.error(f"cannot read the statement: {type(exc).__name__}: {exc}") from exc


def _open_quote(text: str) -> int | None:
    """The offset of a quote that is never closed ('', "", ``; doubled or backslashed inside)."""
    opened: int | None = None
    index = 0
    while index < len(text):
        char = text[index]
        if opened is None:
            if char in "'\"`":
                opened = index
        elif char == "\\" and text[opened] != "`":
            index += 1
        elif char == text[opened]:
            if text[index + 1 : index + 2] == char:
                index += 1
            else:
                opened = None
        index += 1
    return opened


def _parse_select(statement: Statement, tokens: list[Token]) -> exp.Select:
    try:
        trees = _DIALECT.parser().parse(tokens, statement.text)
    except ParseError as exc:
        raise _syntax_error(statement, exc) from exc
    except RecursionError as exc:
        raise statement.error("the statement is nested too deeply") from exc
    except Exception as exc:  # noqa: BLE001 - whatever sqlglot trips on is the statement's load error
        raise statement.error(f"cannot parse the statement: {type(exc).__name__}: {exc}") from exc
    trees = [tree for tree in trees if tree is not None]
    if not trees:
        raise statement.error("the statement is empty: expected 'select <expressions> [where <condition>]'")
    if len(trees) != 1:
        raise statement.error(f"expected one statement, found {len(trees)}")
    tree = trees[0]
    if not isinstance(tree, exp.Select):
        start = len(statement.text) - len(statement.text.lstrip())
        raise statement.error("expected 'select <expressions> [where <condition>]'", start)
    return tree


def _syntax_error(statement: Statement, exc: ParseError) -> SqlError:
    if not exc.errors:
        return statement.error(f"syntax error: {exc}")
    first = exc.errors[0]
    description = str(first.get("description") or "unexpected token")
    message = "syntax error: " + _MISSING.sub("the expression is incomplete", description)
    line, column, highlight = first.get("line"), first.get("col"), first.get("highlight") or ""
    if not isinstance(line, int) or not isinstance(column, int):
        return statement.error(message)
    if not 1 <= line <= len(statement.line_starts):
        return statement.error(message)
    # sqlglot's column is that of the offending token's last character.
    start = statement.line_starts[line - 1] + max(column - len(highlight), 0)
    if highlight:
        message += f' near "{highlight}"'
    return statement.error(message, min(start, len(statement.text)))


def _column_texts(text: str, tokens: list[Token], count: int) -> list[str | None]:
    """Each select-list entry's text as written: the output key of an unnamed expression."""
    items: list[list[Token]] = [[]]
    depth = 0
    for token in tokens[1:]:
        kind = token.token_type
        if depth == 0 and kind in (TokenType.WHERE, TokenType.SEMICOLON, TokenType.FROM):
            break
        if kind in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif kind in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
        if depth == 0 and kind is TokenType.COMMA:
            items.append([])
        else:
            items[-1].append(token)
    if len(items) != count or not all(items):
        return [None] * count
    return [text[item[0].start : item[-1].end + 1] for item in items]


def _column(statement: Statement, node: exp.Expression, source: str | None) -> Column:
    if isinstance(node, exp.Star):
        return Column(None, None, start_of(node))
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
        raise statement.error_at(f"{node.sql(dialect='mysql')} is not supported (there are no tables): use *", node)
    if isinstance(node, exp.Alias):
        return Column(node.alias, node.this, start_of(node))
    key = path_key(node)
    if key is None:
        key = source if source is not None else node.sql(dialect="mysql")
    return Column(key, node, start_of(node))


def path_key(node: exp.Expression) -> str | None:
    """A field path's output key, its last segment: ``a.b.c`` → c, ``a.b[0]`` → b[0]."""
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier):
        return node.name
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
        return node.expression.name
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
        base, index = path_key(node.this), node.expressions[0]
        if base is not None and isinstance(index, exp.Literal):
            return index.this if index.is_string else f"{base}[{index.this}]"
    return None


def _check_keys(statement: Statement, columns: tuple[Column, ...]) -> None:
    seen: set[str] = set()
    stars = 0
    for column in columns:
        if column.key is None:
            stars += 1
            if stars > 1:
                raise statement.error("* appears twice in the select list", column.start)
        elif column.key in seen:
            raise statement.error(
                f'two columns have the output key "{column.key}": give one of them a name with AS', column.start
            )
        else:
            seen.add(column.key)
