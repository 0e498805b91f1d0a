"""``edgefn check``: validate a config, load every handler, compile every SQL statement.

Handlers are loaded in a runtime process (``--check`` mode), exactly as an
instance would load them, so an import or syntax error shows with its file and line.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgefn.manager.config import Config, FunctionConfig
from edgefn.manager.launch import LaunchError, instance_env
from edgefn.manager.process import parse_handshake
from edgefn.manager.runners import Launch
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault

CHECK_TIMEOUT = 30.0


@dataclass(frozen=True)
class HandlerProblem:
    """A function whose handler cannot be loaded."""

    function: str
    error_type: str
    message: str
    stack: tuple[str, ...] = ()

    def __str__(self) -> str:
        frames = "".join(f"\n    {frame}" for frame in self.stack)
        return f"functions: {self.function}: {self.error_type}: {self.message}{frames}"


async def check_functions(config: Config) -> list[HandlerProblem]:
    """Load every function's handler; return the problems (empty when all load)."""
    from edgefn.manager.runners import check_function

    with tempfile.TemporaryDirectory(prefix="edgefn-check-") as folder:
        results = await asyncio.gather(*(check_function(function, Path(folder)) for function in config.functions))
    return [problem for problem in results if problem is not None]


def check_statement(function: FunctionConfig) -> HandlerProblem | None:
    """Compile an in-process (SQL) function's statement."""
    from edgefn.runtimes.sql import SqlError, SqlFunction

    try:
        SqlFunction.compile(function.name, function.handler)
    except SqlError as exc:
        return HandlerProblem(function.name, faults.USER_CODE_SYNTAX_ERROR, str(exc))
    return None


async def check_command(function: FunctionConfig, launcher: Callable[[], Launch]) -> HandlerProblem | None:
    """A runtime without a handshake cannot load a handler on its own: check that its command runs here."""
    try:
        await asyncio.to_thread(launcher)
    except LaunchError as exc:
        return HandlerProblem(function.name, faults.UNAVAILABLE_FAULT, str(exc))
    return None


async def check_process(function: FunctionConfig, launcher: Callable[[], Launch], folder: Path,
                        spawned: Callable[[], None] = lambda: None) -> HandlerProblem | None:
    """Load one function's handler in a runtime process (``--check``, sockets under ``folder``).

    ``spawned`` is called once the process exists.
    """
    try:
        launch = await asyncio.to_thread(launcher)
    except LaunchError as exc:
        return HandlerProblem(function.name, faults.UNAVAILABLE_FAULT, str(exc))
    address = f"unix:{folder / (function.name[:40] + '.sock')}"
    env = instance_env(function, address)
    env.pop("EDGEFN_PARENT_PIPE")
    who = function.instance.identity
    switch = who.spawn_options() if who is not None and who.differs() else {}  # load it as it will run
    if who is not None:
        env["HOME"] = who.home
    process = await asyncio.create_subprocess_exec(
        *launch.argv, "--check", cwd=function.codedir, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        **switch,
    )
    spawned()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return HandlerProblem(function.name, faults.TIMEOUT, f"loading the handler took over {CHECK_TIMEOUT:g}s")
    return _problem(function.name, stdout, stderr, process.returncode)


def _problem(name: str, stdout: bytes, stderr: bytes, code: int | None) -> HandlerProblem | None:
    line = stdout.splitlines()[0] if stdout.strip() else b""
    if line:
        try:
            parse_handshake(line, name)
        except Fault as fault:
            return HandlerProblem(name, fault.error_type, fault.message, tuple(fault.stack))
        if code == 0:
            return None
    tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
    return HandlerProblem(name, faults.UNKNOWN_FAULT, f"the runtime exited with status {code}: " + " | ".join(tail))
