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


def unix_sockets(pid: int) -> set[Path]:
    """The paths of the named unix sockets that process ``pid`` holds open (what it listens on, say).

    From its fds and /proc/net/unix, not from its environment: a runtime that
    was a standby took its environment on after it started, which
    /proc/PID/environ does not show.
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    with open("/proc/net/unix") as table:
        rows = [line.split() for line in table.read().splitlines()[1:]]
    return {Path(row[7]) for row in rows if len(row) > 7 and row[6] in inodes and row[7].startswith("/")}


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
