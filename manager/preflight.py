"""What ``run`` would die of at start-up, found before anything starts.

``edgefn check`` reports these with the rest; ``run`` and ``dev`` refuse to
start on them, each a line naming the function or the config key: a SQL
statement that does not compile, TLS files that are not PEM or do not match.

``run`` also refuses a handler that does not load, as ``check`` would. It does
not load each handler twice to find out: :func:`first_start` starts each
function's ``min`` instances first, before the broker, the server and the hub,
and their own start is the check (a function with no ``min`` instance loads its
handler in a ``--check`` process meanwhile, as ``check`` does).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgefn.manager.config import Config, FunctionConfig
from edgefn.manager.errors import EdgefnError

if TYPE_CHECKING:
    from edgefn.manager.check import HandlerProblem
    from edgefn.manager.runners import Runner, RunnerTable


class StartRefused(EdgefnError):
    """``run`` did not start: what ``check`` reports for this config, one problem a line."""

    def __init__(self, problems: list[object]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


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


async def first_start(config: Config, runners: RunnerTable) -> None:
    """Build every function's runner and start the ``min`` instances; raise StartRefused on what check reports.

    Nothing is logged of a handler that does not load: the caller reports
    :class:`StartRefused` as ``check`` does, and stops the runners.
    """
    from edgefn.manager.runners import precheck_function

    found = [problem for problem in await asyncio.gather(*map(precheck_function, config.functions)) if problem]
    if found or tls_problems(config):  # rare: say everything check says, as check says it
        raise StartRefused(await _everything(config))
    await runners.build_all(config.functions)
    with tempfile.TemporaryDirectory(prefix="edgefn-check-") as folder:
        loaded = await asyncio.gather(*(_load(function, runners[function.name], Path(folder))
                                        for function in config.functions))
    if problems := [problem for problem in loaded if problem is not None]:
        raise StartRefused(list(problems))


async def _everything(config: Config) -> list[object]:
    from edgefn.manager.check import check_functions

    return [*await check_functions(config), *tls_problems(config)]


async def _load(function: FunctionConfig, runner: Runner, folder: Path) -> HandlerProblem | None:
    """Whether ``function``'s handler loads: its first ``min`` instance's start, else a ``--check`` process."""
    from edgefn.manager.check import HandlerProblem, check_process
    from edgefn.manager.pool import Pool
    from edgefn.manager.runners import launcher, loads_handler

    if not loads_handler(function):
        return None
    if function.instance.min and isinstance(runner, Pool):
        fault = await runner.start_checked()
        return None if fault is None else HandlerProblem(function.name, fault.error_type, fault.message,
                                                         tuple(fault.stack))
    return await check_process(function, launcher(function), folder)
