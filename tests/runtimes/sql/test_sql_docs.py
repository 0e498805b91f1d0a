"""docs/sql.md's examples are true: every row of its dialect table runs as documented."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from edgefn.runtimes.sql import SqlFunction

DOC = Path(__file__).resolve().parents[3] / "docs" / "sql.md"
HEADER = "| construct | statement | payload | output |"


def _code(cell: str) -> str:
    cell = cell.strip()
    if cell.startswith("``"):
        return cell[2:-2].strip()
    return cell.strip("`")


def examples() -> list[tuple[str, str, str, str]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        construct, statement, payload, output = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((construct, _code(statement), _code(payload), _code(output)))
    return rows


EXAMPLES = examples()


def test_the_doc_has_an_example_per_construct() -> None:
    constructs = {row[0] for row in EXAMPLES}
    for needed in ("`*`", "`AS`", "`IN`", "`LIKE` (`%`, `_`)", "`BETWEEN`", "`IS NULL`", "`CASE WHEN`", "`topic(n)` (1-based)",
                   "`CURRENT_TIMESTAMP`", "`coalesce`", "`substring`", "`power`"):
        assert needed in constructs
    assert len(EXAMPLES) >= 50


@pytest.mark.parametrize(("construct", "statement", "payload", "output"), EXAMPLES, ids=[row[0] for row in EXAMPLES])
def test_documented_example(construct: str, statement: str, payload: str, output: str) -> None:
    out = SqlFunction.compile("docs", statement).evaluate(payload.encode(), "sensors/kitchen", 1)
    if output == "nothing":
        assert out == b""
    elif out == payload.encode():
        assert output == payload
    else:
        assert list(orjson.loads(out).items()) == list(orjson.loads(output).items())
