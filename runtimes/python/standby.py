"""The runtime's side of a standby start (the manager's side is ``edgefn.manager.standby``).

Started with ``EDGEFN_STANDBY=1``, a Python runtime imports what serving needs,
then waits for the manager to say which instance it is: one JSON line on stdin
with the working folder and the environment it would have been started with.
It takes them on and starts as that instance would have. EOF instead means
it is not needed: it exits at once, without a word.
"""

from __future__ import annotations

import os
import time

import orjson


def preload() -> None:
    """Import what serving a function imports, while the manager is busy with its own start."""
    import asyncio  # noqa: F401
    import grpc.aio  # noqa: F401

    import edgefn.runtimes.python.invoke  # noqa: F401
    import edgefn.runtimes.service  # noqa: F401


def become_assigned(fd: int = 0) -> None:
    """Block until the assignment line arrives on ``fd``, then take on its folder and environment."""
    line = _read_line(fd)
    if not line:
        os._exit(0)  # released unused: nothing to say, nothing to flush
    assignment = orjson.loads(line)
    if assignment.get("cwd"):
        os.chdir(assignment["cwd"])
    os.environ.clear()
    os.environ.update(assignment["env"])
    time.tzset()  # TZ may differ from the standby's


def _read_line(fd: int) -> bytes:
    """The one line the manager writes (b"" at EOF); nothing follows it but the parent pipe's EOF."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            return b""
        data += chunk
    return bytes(data)
