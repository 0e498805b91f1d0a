"""``edgefn check``: validate a config, load every handler, compile every SQL statement.

Handlers are loaded in a runtime process (``--check`` mode), exactly as an
instance would load them, so an import or syntax error shows with its file and line.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson

from edgefn.manager.config import Config, FunctionConfig
from edgefn.manager.launch import LaunchError, instance_env, runtime_argv
from edgefn.runtimes import faults
from edgefn.runtimes.sql import SqlError, SqlFunction

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
    with tempfile.TemporaryDirectory(prefix="edgefn-check-") as folder:
        results = await asyncio.gather(*(check_function(function, Path(folder)) for function in config.functions))
    return [problem for problem in results if problem is not None]


async def check_function(function: FunctionConfig, folder: Path) -> HandlerProblem | None:
    """Load one function's handler (in a runtime process, sockets under ``folder``); its problem or None."""
    if function.runtime == "sql":
        try:
            SqlFunction.compile(function.name, function.handler)
        except SqlError as exc:
            return HandlerProblem(function.name, faults.USER_CODE_SYNTAX_ERROR, str(exc))
        return None
    try:
        argv = runtime_argv(function.runtime)
    except LaunchError as exc:
        return HandlerProblem(function.name, "Runtime.Unavailable", str(exc))
    address = f"unix:{folder / (function.name[:40] + '.sock')}"
    env = instance_env(function, address)
    env.pop("EDGEFN_PARENT_PIPE")
    process = await asyncio.create_subprocess_exec(
        *argv, "--check", cwd=function.codedir, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return HandlerProblem(function.name, "Runtime.Timeout", f"loading the handler took over {CHECK_TIMEOUT:g}s")
    return _problem(function.name, stdout, stderr, process.returncode)


def _problem(name: str, stdout: bytes, stderr: bytes, code: int | None) -> HandlerProblem | None:
    line = stdout.splitlines()[0] if stdout.strip() else b""
    try:
        handshake = orjson.loads(line) if line else None
    except orjson.JSONDecodeError:
        handshake = None
    if isinstance(handshake, dict) and handshake.get("ready") and code == 0:
        return None
    if isinstance(handshake, dict) and not handshake.get("ready"):
        return HandlerProblem(
            name,
            str(handshake.get("errorType", "Runtime.Unknown")),
            str(handshake.get("errorMessage", "")),
            tuple(str(frame) for frame in handshake.get("errorStack") or ()),
        )
    tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
    return HandlerProblem(name, "Runtime.Unknown", f"the runtime exited with status {code}: " + " | ".join(tail))
