"""``edgefn runtime sql``: the SQL engine served over gRPC, for wire parity with Baetyl.

The manager runs SQL functions in its own process (no gRPC hop); this runtime
serves the same engine as ``baetyl.Function`` (Call and Talk) through the
shared serving layer, for direct calls and Baetyl-style deployments. The
statement comes in ``--handler`` (or ``EDGEFN_FUNCTION_HANDLER``); a statement
that does not compile gives the ``{"ready": false, ...}`` handshake and exit 3.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from edgefn.runtimes import serving
from edgefn.runtimes.faults import USER_CODE_SYNTAX_ERROR, Fault
from edgefn.wire.function_pb2 import FunctionMessage

from .engine import SqlFunction
from .parser import SqlError, lines


def load(options: serving.RuntimeOptions) -> tuple[serving.Invoke, bool]:
    """Compile the statement (a SqlError becomes a load Fault) and wrap it as an Invoke.

    Evaluation is short and bounded, so each call is answered at once with a
    finished future: no task, no thread, and calls may overlap freely.
    """
    try:
        function = SqlFunction.compile(options.name or "sql", options.handler)
    except SqlError as error:
        raise Fault(USER_CODE_SYNTAX_ERROR, str(error), _pointer(options.handler, error)) from error

    def invoke(request: FunctionMessage, outputs: object) -> asyncio.Future[bytes]:  # SQL has no outputs
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        try:
            answer.set_result(function.evaluate(request.Payload, request.Topic, request.QOS))
        except Fault as fault:
            answer.set_exception(fault)
        return answer

    return invoke, True


def _pointer(statement: str, error: SqlError) -> list[str]:
    """The statement's offending line with a caret under the column, as the error's stack."""
    if error.position is None:
        return []
    text = lines(statement)
    line = text[min(error.line, len(text)) - 1]
    return [line, " " * (error.position - 1) + "^"]


def main(argv: Sequence[str]) -> int:
    """``edgefn runtime sql ARGV``: serve (or ``--check``) one SQL function; return the exit status."""
    return serving.run(argv, "sql", load)
