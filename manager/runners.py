"""The runner registry: every runtime kind, how its functions are built, checked
and launched, and the manager's live table of runners.

A *runner* is what a rule or a direct call calls: a pool of runtime instances,
or the in-process SQL engine. Each runtime kind (:data:`KINDS`) says, as data,
what its config looks like and which builder, checker and launcher it uses;
``run``, ``dev``, ``check`` and ``call`` all go through :func:`build_runner`
and :func:`check_function`. Adding a kind touches this table and the config
schema, nothing else.

This module is imported by the config reader: what it needs of the pool, the
SQL engine and the checker is imported when a builder runs, not at import.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edgefn.manager.config import FunctionConfig
from edgefn.manager.errors import EdgefnError
from edgefn.manager.launch import PYTHON_ARGV, LaunchError
from edgefn.manager.message import Call
from edgefn.manager.metrics import FunctionStats, Metrics
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from edgefn.wire.limits import DEFAULT_MESSAGE_MAX

if TYPE_CHECKING:
    from edgefn.manager.check import HandlerProblem
    from edgefn.manager.client import OutputSink

log = logging.getLogger("edgefn.manager")


class Runner(Protocol):
    """What a rule calls: a pool of instances, or the in-process SQL engine."""

    @property
    def runtime(self) -> str:
        """The runtime kind's name (for envelopes and logs)."""

    @property
    def message_max(self) -> int:
        """The largest payload in or out, bytes."""

    @property
    def waiting(self) -> int:
        """Calls waiting for a free slot."""

    async def call(self, call: Call, outputs: OutputSink | None = None) -> bytes:
        """Run one call: the result payload (b"" = nothing to publish), or raise a ``Fault``.

        ``outputs``, when given, is called on the loop with each output frame
        the call produces before its result, in order (``Payload``, ``Topic``,
        ``OutputQOS``, ``OutputRetain``); never after the call has failed.
        """

    async def start(self) -> None:
        """Get ready (``min`` instances warm)."""

    async def stop(self, grace: float) -> None:
        """Let calls in flight finish within ``grace``, then stop."""


class Gone:
    """The runner of a function that no longer exists: every call fails, nothing waits."""

    runtime = "unknown"
    message_max = DEFAULT_MESSAGE_MAX
    waiting = 0

    def __init__(self, function: str) -> None:
        self.function = function

    async def call(self, call: Call, outputs: OutputSink | None = None) -> bytes:
        raise Fault(faults.FUNCTION_NOT_FOUND, f"function {self.function!r} no longer exists (the config changed)")

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self, grace: float) -> None:
        """Nothing to stop."""


@dataclass(frozen=True)
class Launch:
    """How one function's instances start: a command line, and how they say they are ready."""

    argv: tuple[str, ...]
    handshake: bool = True  # writes edgefn's handshake line; else ready when its address answers
    tcp: bool = False  # listens on a loopback TCP port rather than a unix socket


# -- the kinds -------------------------------------------------------------------------

_NODE_HANDLER = re.compile(r"[^\s/][^\s]*\.[A-Za-z_$][\w$]*")


def _python_handler(handler: str) -> str | None:
    parts = handler.split(".")
    if len(parts) >= 2 and all(part.isidentifier() for part in parts):
        return None
    return f"expected module.attribute (Python names, like index.handler), got {handler!r}"


def _node_handler(handler: str) -> str | None:
    return None if _NODE_HANDLER.fullmatch(handler) else f"expected module.export (like index.handler), got {handler!r}"


def _statement(handler: str) -> str | None:
    return None if handler.strip() else "must not be empty; expected the SQL statement"


def _anything(handler: str) -> str | None:
    return None


def _python_launch(function: FunctionConfig) -> Launch:
    return Launch(PYTHON_ARGV)


def _node_argv() -> tuple[str, ...]:
    from edgefn.manager.launch import NODE_ENTRY, node_executable

    return (node_executable(), str(NODE_ENTRY))


def _node_launch(function: FunctionConfig) -> Launch:
    return Launch(_node_argv())


def _sql_launch(function: FunctionConfig) -> Launch:
    return Launch((sys.executable, "-P", "-m", "edgefn.runtimes.sql"))


def _custom_launch(function: FunctionConfig) -> Launch:
    executable = function.command[0]
    # A name with a slash is a path (made absolute against the config's folder at load); else it is on PATH.
    if shutil.which(executable) is None:
        raise LaunchError(f"function {function.name}: command {executable!r} is not an executable file"
                          + ("" if "/" in executable else " on PATH"))
    # Under the guard: a runtime that does not watch edgefn's parent pipe still never outlives us.
    guarded = (sys.executable, "-P", "-m", "edgefn.runtimes.guard", *function.command)
    return Launch(guarded, handshake=function.handshake, tcp=not function.handshake)


def _serve_python(argv: list[str]) -> int:
    from edgefn.runtimes.python import main

    return main(argv)


def _serve_sql(argv: list[str]) -> int:
    from edgefn.runtimes.sql.__main__ import main

    return main(argv)


def _serve_node(argv: list[str]) -> int:
    import os

    command = _node_argv()
    os.execv(command[0], [*command, *argv])


@dataclass(frozen=True)
class RuntimeKind:
    """One kind of runtime, as the config, the manager and the CLI see it."""

    name: str
    handler_hint: str  # what `handler` holds, for messages
    check_handler: Callable[[str], str | None]  # what is wrong with a handler, or None
    codedir: str  # "required" | "optional" (default: the config's folder) | "none"
    launch: Callable[[FunctionConfig], Launch] | None  # may block (node runs `node --version`)
    in_process: bool = False  # runs in the manager: no instances, no env, only message.length.max
    command: bool = False  # takes `command` and `handshake` (custom runtimes)
    handler_required: bool = True
    serve: Callable[[list[str]], int] | None = None  # `edgefn runtime NAME ARGV`


KINDS: dict[str, RuntimeKind] = {
    kind.name: kind
    for kind in (
        RuntimeKind("python", "module.attribute, like index.handler", _python_handler, "required",
                    _python_launch, serve=_serve_python),
        RuntimeKind("node", "module.export, like index.handler", _node_handler, "required",
                    _node_launch, serve=_serve_node),
        RuntimeKind("sql", "the SQL statement", _statement, "none", _sql_launch, in_process=True,
                    serve=_serve_sql),
        RuntimeKind("custom", "whatever the runtime reads (EDGEFN_FUNCTION_HANDLER)", _anything, "optional",
                    _custom_launch, command=True, handler_required=False),
    )
}

# Baetyl v1's runtime names (its images were baetyl-function-python27, -python36,
# -node85, ...): accepted with a warning naming edgefn's spelling.
_ALIASES = ((re.compile(r"python(2\d?|3\d*)"), "python"), (re.compile(r"node\d+"), "node"))


def alias(name: str) -> str | None:
    """edgefn's name for a Baetyl runtime name (``python36`` → ``python``), or None."""
    for pattern, kind in _ALIASES:
        if pattern.fullmatch(name):
            return kind
    return None


# -- building and checking -------------------------------------------------------------


def build_runner(function: FunctionConfig, *, socket_dir: Path, stats: FunctionStats) -> Runner:
    """The runner of ``function`` (raises ``SqlError`` for a statement that does not compile)."""
    kind = KINDS[function.runtime]
    if kind.in_process:
        from edgefn.manager.sql import SqlRunner

        return SqlRunner(function, stats)
    from edgefn.manager.pool import Pool

    return Pool(function, launcher=launcher(function), socket_dir=socket_dir, stats=stats)


def launcher(function: FunctionConfig) -> Callable[[], Launch]:
    """The (blocking, run in a thread) way to find ``function``'s command line."""
    launch = KINDS[function.runtime].launch
    assert launch is not None
    return lambda: launch(function)


async def check_function(function: FunctionConfig, folder: Path) -> HandlerProblem | None:
    """Load ``function``'s handler as its runner would (sockets under ``folder``); its problem or None."""
    from edgefn.manager import check

    problem = await precheck_function(function)
    if problem is not None or not loads_handler(function):
        return problem
    return await check.check_process(function, launcher(function), folder)


async def precheck_function(function: FunctionConfig) -> HandlerProblem | None:
    """What :func:`check_function` finds without loading a handler: a SQL statement that does not
    compile, an ``instance.user``/``group`` that cannot be used, a custom command that is not there."""
    from edgefn.manager import check

    kind = KINDS[function.runtime]
    if kind.in_process:
        return check.check_statement(function)
    if problems := await identity_problems(function):
        prefix = f"function {function.name}: "  # HandlerProblem names the function itself
        return check.HandlerProblem(function.name, faults.UNAVAILABLE_FAULT,
                                    "; ".join(line.removeprefix(prefix) for line in problems))
    if kind.command and not function.handshake:
        return await check.check_command(function, launcher(function))
    return None


def loads_handler(function: FunctionConfig) -> bool:
    """True when checking ``function`` loads its handler in a runtime process (one that writes the handshake)."""
    kind = KINDS[function.runtime]
    return not kind.in_process and (not kind.command or function.handshake)


async def identity_problems(function: FunctionConfig) -> list[str]:
    """What stops ``function`` from running as its ``instance.user``/``group`` here (one line each)."""
    from edgefn.manager import identity

    who = function.instance.identity
    if who is None or not who.differs() or KINDS[function.runtime].in_process:
        return []
    try:
        launch = await asyncio.to_thread(launcher(function))
    except LaunchError:
        return []  # reported on its own
    return identity.problems(function.name, who, function.codedir, launch.argv[0])


async def probe_launch(functions: list[FunctionConfig]) -> list[str]:
    """Say now, not at the first message, which runtimes cannot run here: one line each."""
    problems: dict[str, str] = {}
    for function in functions:
        kind = KINDS[function.runtime]
        key = function.name if kind.command else kind.name
        if kind.in_process or key in problems:
            continue
        try:
            await asyncio.to_thread(launcher(function))
        except LaunchError as exc:
            problems[key] = str(exc)
    return list(problems.values())



# -- the live table ----------------------------------------------------------------------


class ReloadError(EdgefnError):
    """A new config or new code cannot be applied; the running one stays."""

    def __init__(self, problems: list[HandlerProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


# How often a retiring runner is checked for calls still waiting for a slot.
RETIRE_POLL = 0.05


class RunnerTable(Mapping[str, Runner]):
    """The manager's runners by function name: built, started, swapped on reload, retired, stopped.

    Routes and the gRPC server read it live (a lookup per call), so a swap takes
    effect at the next call. ``prepare`` maps a function's config to the one its
    runner uses (``edgefn dev`` points codedir at a snapshot of the last good
    code); ``on_removed`` runs after a removed function's runner is gone.
    """

    def __init__(
        self,
        *,
        socket_dir: Path,
        metrics: Metrics,
        grace: float,
        prepare: Callable[[FunctionConfig], FunctionConfig] | None = None,
    ) -> None:
        self.on_removed: Callable[[], Awaitable[None]] | None = None
        self.grace = grace
        self._runners: dict[str, Runner] = {}
        self._socket_dir = socket_dir
        self._metrics = metrics
        self._prepare = prepare or (lambda function: function)
        self._retiring: set[asyncio.Task[None]] = set()
        self._built: list[FunctionConfig] = []  # what build_all built, for start

    def __getitem__(self, name: str) -> Runner:
        return self._runners[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._runners)

    def __len__(self) -> int:
        return len(self._runners)

    def build(self, function: FunctionConfig) -> Runner:
        return build_runner(self._prepare(function), socket_dir=self._socket_dir,
                            stats=self._metrics.function(function.name))

    async def build_all(self, functions: Iterable[FunctionConfig]) -> None:
        """Build a runner per function; nothing starts yet.

        Raises ``IdentityError`` when a function cannot run as its
        ``instance.user``/``group`` here, before anything (the hub included) starts.
        """
        from edgefn.manager.identity import require

        self._built = list(functions)
        for function in self._built:
            self._runners[function.name] = self.build(function)
        prepared = [self._prepare(function) for function in self._built]  # the code its instances run
        require(line for lines in await asyncio.gather(*map(identity_problems, prepared)) for line in lines)

    async def start(self) -> None:
        """Start every runner built (``min`` instances warm); runtimes that cannot run here are logged.

        The table is complete already: deliveries arriving while instances start
        (the hub connects at the same time) find their runner.
        """
        for problem in await probe_launch(self._built):
            log.error("%s; its functions will answer with Runtime.Unavailable envelopes", problem)
        await asyncio.gather(*(runner.start() for runner in self._runners.values()))

    async def fresh(self, functions: list[FunctionConfig]) -> dict[str, Runner]:
        """Check, build and start runners for ``functions``: all of them, or ReloadError."""
        with tempfile.TemporaryDirectory(prefix="edgefn-check-") as folder:
            checked = await asyncio.gather(
                *(check_function(self._prepare(function), Path(folder)) for function in functions))
        problems = [problem for problem in checked if problem is not None]
        if problems:
            raise ReloadError(problems)
        built = {function.name: self.build(function) for function in functions}
        await asyncio.gather(*(runner.start() for runner in built.values()))
        return built

    def swap(self, fresh: Mapping[str, Runner], retire: Iterable[str]) -> None:
        """Put ``fresh`` runners in, and retire the current runners of the functions in ``retire``.

        A removed function's runner stays in the table until it is retired:
        deliveries routed before the swap may still retry on it.
        """
        replaced = {name: self._runners[name] for name in retire if name in self._runners}
        self._runners.update(fresh)
        for name, runner in replaced.items():
            task = asyncio.create_task(self._retire(name, runner), name=f"retire:{name}")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, name: str, runner: Runner) -> None:
        # Deliveries routed before the swap may still wait for one of its slots;
        # stop() would fail them (Runtime.Unavailable, an attempt spent, or a
        # removed rule's envelope), so let them get an instance first. No new
        # call comes: routes look runners up in the new table.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        while runner.waiting and loop.time() < deadline:
            await asyncio.sleep(RETIRE_POLL)
        await runner.stop(max(0.0, deadline - loop.time()))
        if self._runners.get(name) is runner:  # a removed function: retries found it until now
            del self._runners[name]
            if self.on_removed is not None:
                await self.on_removed()

    async def stop(self) -> None:
        """Stop every runner (calls in flight finish within the grace) once retirements are done."""
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await asyncio.gather(*(runner.stop(self.grace) for runner in self._runners.values()),
                             return_exceptions=True)
