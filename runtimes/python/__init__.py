"""The Python runtime: serves one ``handler(event, context)`` from a codedir over gRPC.

Spawned by the manager as ``python -I -m edgefn.runtimes.python [flags]`` with
cwd = codedir (``-I`` keeps the codedir's modules from shadowing the runtime's),
or run as ``edgefn runtime python [flags]`` through :func:`main`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgefn.runtimes import serving
from edgefn.runtimes.faults import UNKNOWN_FAULT, Fault
from edgefn.runtimes.python.loader import codedir_prefix, is_async, load_handler, may_shadow

if TYPE_CHECKING:
    from edgefn.runtimes.service import Invoke
    from edgefn.wire.function_pb2 import FunctionMessage


def load(options: serving.RuntimeOptions) -> tuple[Invoke, bool]:
    """Import the handler from the codedir (raising a load Fault) and wrap it as an Invoke.

    The runtime's own modules are imported before the codedir goes on
    ``sys.path`` (the user's names cannot shadow them); a ``--check`` skips
    them, unless a codedir module's name could clash with one of them.
    """
    if not options.check or may_shadow(options.codedir):
        from edgefn.runtimes.python.invoke import make_invoke
    handler = load_handler(options.handler, options.codedir)
    if options.check:
        return _not_served, is_async(handler)
    return make_invoke(handler, options.name, codedir_prefix(options.codedir))


async def _not_served(request: FunctionMessage, outputs: object) -> bytes:
    raise Fault(UNKNOWN_FAULT, "a --check runtime serves no call")


def main(argv: Sequence[str]) -> int:
    """``edgefn runtime python ARGV``: serve (or ``--check``) one function; return the exit status."""
    return serving.run(argv, "python", load)
