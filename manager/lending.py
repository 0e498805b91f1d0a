"""Lending a pool's instances: who waits in line, and how many calls an instance takes.

When every instance is busy and no more may start, a runtime that runs its
calls one at a time may take more, queued in the runtime: one call at a time
is a rule about the handler's execution, not about the wire. The runtime then
never idles waiting for the manager's next call, and queued calls share Talk
frames (one frame of 64 calls costs both sides little more than a frame of
one: that is most of the throughput). How many: as many as the instance runs
in PIPELINE_WAIT at its measured pace (see :func:`depth`), at most
PIPELINE_MAX, so a call queued in a runtime waits about as long as it would in
the pool. A queued call's timeout counts from when the call before it ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgefn.manager.instance import Instance

PIPELINE_MAX = 64
PIPELINE_WAIT = 0.025  # seconds
# ... but only on an instance that answered within this many seconds,
PIPELINE_STALE = 0.25
# ... and only while calls take less than this once lent (a moving average): a
# call queued behind a long one would wait while another instance may free up.
PIPELINE_SHORT = 0.05


class Lender:
    """A caller waiting in line to lend an instance."""

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        """Wait for :meth:`wake` (one at a time)."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def pick(instances: Iterable[Instance], concurrency: int, pipelined: bool = False) -> Instance | None:
    """The least busy ready instance with room; among equals the most recently used, so
    that spare instances stay idle long enough to be evicted. ``pipelined`` lets Talk
    instances take calls beyond their concurrency, queued in the runtime."""
    best: Instance | None = None
    best_load = 0
    fresh = time.monotonic() - PIPELINE_STALE if pipelined else 0.0
    for instance in instances:
        if room_on(instance, concurrency, pipelined, fresh) <= 0:
            continue
        load = instance.in_flight
        if best is None or load < best_load or (load == best_load and instance.last_used > best.last_used):
            best, best_load = instance, load
    return best


def room_on(instance: Instance, concurrency: int, pipelined: bool, fresh: float) -> int:
    """How many more calls ``instance`` takes now (``fresh``: answered since, to pipeline)."""
    if not instance.ready:
        return 0
    limit = concurrency
    # Never queue behind a call that may be hung.
    if pipelined and instance.pipelines and instance.last_used >= fresh:
        limit += depth(instance)
    return limit - instance.in_flight


def depth(instance: Instance) -> int:
    """How many calls may queue in ``instance``'s runtime: what it runs in PIPELINE_WAIT."""
    pace = instance.pace
    if pace <= PIPELINE_WAIT / PIPELINE_MAX:
        return PIPELINE_MAX
    return max(1, int(PIPELINE_WAIT / pace))
