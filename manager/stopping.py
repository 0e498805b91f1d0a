"""Stopping promptly: work that gives way to a stop request (a signal) whenever it comes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` until it finishes (True) or ``stop`` is set first (it is cancelled: False).

    Start-up can wait a long time (a hub that is not there, instances slow to
    warm); one SIGTERM must still end it, as systemd and ``docker stop`` expect.
    ``work``'s own error is raised.
    """
    task = asyncio.create_task(work, name="manager:start")
    stopped = asyncio.create_task(stop.wait(), name="manager:start:stop")
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            pending.cancel()
        await asyncio.wait((task, stopped))
    if task.cancelled():
        return False
    task.result()
    return True
