"""Real processes in a test: children, liveness, waiting for an exit, a standalone runtime."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> set[int]:
    """The live (not zombie) child processes of ``pid``: what ``pgrep -P`` prints."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(entry)) is not None and fields[1] == str(pid) and fields[0] != "Z":
            found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


async def wait_gone(pid: int, timeout: float = 15.0) -> None:
    """Wait until process ``pid`` has exited (a pidfd turns readable), or fail."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    loop.add_reader(fd, gone.set)
    try:
        async with asyncio.timeout(timeout):
            await gone.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


@contextlib.asynccontextmanager
async def python_runtime(address: str, name: str, handler: str, codedir: Path) -> AsyncIterator[None]:
    """``edgefn runtime python`` serving one function on ``address``, ready; terminated afterwards."""
    runtime = await asyncio.create_subprocess_exec(
        sys.executable, "-P", "-m", "edgefn.runtimes.python", "--address", address, "--name", name,
        "--handler", handler, "--codedir", str(codedir),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert runtime.stdout is not None
        async with asyncio.timeout(20):
            assert orjson.loads(await runtime.stdout.readline())["ready"] is True
        yield
    finally:
        runtime.terminate()
        await runtime.wait()
