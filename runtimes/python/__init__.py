"""The Python runtime: serves one ``handler(event, context)`` from a codedir over gRPC.

Spawned by the manager as ``python -I -m edgefn.runtimes.python [flags]`` with
cwd = codedir (``-I`` keeps the codedir's modules from shadowing the runtime's),
or run as ``edgefn runtime python [flags]`` through :func:`main`.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgefn.runtimes import serving
from edgefn.runtimes.python.invoke import make_invoke
from edgefn.runtimes.python.loader import codedir_prefix, load_handler


def load(options: serving.RuntimeOptions) -> tuple[serving.Invoke, bool]:
    """Import the handler from the codedir (raising a load Fault) and wrap it as an Invoke."""
    handler = load_handler(options.handler, options.codedir)
    return make_invoke(handler, options.name, codedir_prefix(options.codedir))


def main(argv: Sequence[str]) -> int:
    """``edgefn runtime python ARGV``: serve (or ``--check``) one function; return the exit status."""
    return serving.run(argv, "python", load)
