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
from typing import TYPE_CHECKING, Any

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


async def first_start(config: Config, runners: RunnerTable, meanwhile: Callable[[], object] = lambda: None) -> None:
    """Build every function's runner and start the ``min`` instances; raise StartRefused on what check reports.

    ``meanwhile`` runs in a thread once their processes are spawned, while they
    boot (the manager imports what connects the hub). Nothing is logged of a
    handler that does not load: the caller reports :class:`StartRefused` as
    ``check`` does, and stops the runners.
    """
    from edgefn.manager.runners import precheck_function

    found = [problem for problem in await asyncio.gather(*map(precheck_function, config.functions)) if problem]
    if found or tls_problems(config):  # rare: say everything check says, as check says it
        raise StartRefused(await _everything(config))
    await runners.build_all(config.functions)
    spawning = _Spawning(config.functions)
    with tempfile.TemporaryDirectory(prefix="edgefn-check-") as folder:
        loads = asyncio.gather(*(_load(function, runners[function.name], Path(folder), spawning.spawned)
                                 for function in config.functions))
        try:
            await spawning.wait(loads)
            await asyncio.to_thread(meanwhile)
            loaded = await loads
        finally:
            loads.cancel()  # a stop during start-up; nothing once they are done
            await asyncio.gather(loads, return_exceptions=True)
    if problems := [problem for problem in loaded if problem is not None]:
        runners.grace = 0  # nothing was called yet: what did start stops at once, without a word
        raise StartRefused(list(problems))


class _Spawning:
    """Counts the processes the start-up check spawns: the first ``min`` instances, or one ``--check``."""

    def __init__(self, functions: tuple[FunctionConfig, ...] | list[FunctionConfig]) -> None:
        from edgefn.manager.runners import loads_handler

        self._left = sum(function.instance.min or 1 for function in functions if loads_handler(function))
        self._done = asyncio.Event()
        if not self._left:
            self._done.set()

    def spawned(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._done.set()

    async def wait(self, loads: asyncio.Future[Any]) -> None:
        """Until every process is spawned, or the loads ended first (a start that failed early)."""
        done = asyncio.create_task(self._done.wait(), name="start-check:spawned")
        try:
            await asyncio.wait((done, loads), return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()


async def _everything(config: Config) -> list[object]:
    from edgefn.manager.check import check_functions

    return [*await check_functions(config), *tls_problems(config)]


async def _load(function: FunctionConfig, runner: Runner, folder: Path,
                spawned: Callable[[], None]) -> HandlerProblem | None:
    """Whether ``function``'s handler loads: its first ``min`` instances' start, else a ``--check`` process."""
    from edgefn.manager.check import HandlerProblem, check_process
    from edgefn.manager.pool import Pool
    from edgefn.manager.runners import launcher, loads_handler

    if not loads_handler(function):
        return None
    if function.instance.min and isinstance(runner, Pool):
        fault = await runner.start_checked(spawned)
        return None if fault is None else HandlerProblem(function.name, fault.error_type, fault.message,
                                                         tuple(fault.stack))
    return await check_process(function, launcher(function), folder, spawned)
