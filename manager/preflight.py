"""What ``run`` would die of at start-up, found before anything starts.

``edgefn check`` reports these with the rest; ``run`` and ``dev`` refuse to
start on them, each a line naming the function or the config key: a SQL
statement that does not compile, TLS files that are not PEM or do not match.
"""

from __future__ import annotations

from collections.abc import Callable

from edgefn.manager.config import Config
from edgefn.manager.errors import EdgefnError


def sql_problems(config: Config) -> list[str]:
    """One line per in-process (SQL) function whose statement does not compile."""
    from edgefn.manager.runners import KINDS

    statements = [function for function in config.functions if KINDS[function.runtime].in_process]
    if not statements:
        return []  # and sqlglot is never imported
    from edgefn.manager.check import check_statement

    return [f"functions: {function.name}: {problem.message}" for function in statements
            if (problem := check_statement(function)) is not None]


def tls_problems(config: Config) -> list[str]:
    """One line per TLS file set (hub, server) that TLS could not use."""
    problems = []
    if config.hub.tls and (config.hub.ca or config.hub.cert):
        from edgefn.manager.hub import tls_context

        problems += _problem(lambda: tls_context(config.hub))
    if config.server is not None and config.server.cert is not None and config.server.key is not None:
        from edgefn.manager.server import check_pem

        server = config.server
        problems += _problem(lambda: check_pem(server))
    return problems


def _problem(attempt: Callable[[], object]) -> list[str]:
    try:
        attempt()
    except EdgefnError as exc:
        return [str(exc)]
    return []
