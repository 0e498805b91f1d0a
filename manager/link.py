"""One connection of a hub: its aiomqtt client, and the acknowledgements waited for on it.

A :class:`Link` lives from connect to loss. Everything waiting on it (a
PUBLISH's PUBACK or PUBCOMP, a SUBACK, an UNSUBACK) fails with
:class:`HubDisconnected` the moment it is lost, and with :class:`HubError`
when its acknowledgement does not come in time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from edgefn.manager.errors import EdgefnError
from edgefn.manager.mqtt_internals import client_loop, paho_client


class HubError(EdgefnError):
    """A hub operation failed."""


class HubDisconnected(HubError):
    """The connection was down, or went down before the operation completed."""


class _Waiter:
    """An operation waiting for its acknowledgement: what to say if none comes in time."""

    __slots__ = ("future", "deadline", "timeout", "what", "subject")

    def __init__(self, future: asyncio.Future[Any], deadline: float, timeout: float, what: str, subject: object) -> None:
        self.future, self.deadline, self.timeout, self.what, self.subject = future, deadline, timeout, what, subject

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_exception(
                HubError(f"no acknowledgement of {self.what} {self.subject!r} within {self.timeout}s"))


class Link:
    """One connection: a fresh aiomqtt client plus what waits on it.

    ``waiters`` maps paho's packet ids (shared by PUBLISH, SUBSCRIBE and
    UNSUBSCRIBE) to the operation resolved by the matching acknowledgement.
    Their deadlines share one timer (a timer per publish cost more than the
    publish's own bookkeeping).
    """

    def __init__(self, client: aiomqtt.Client, generation: int) -> None:
        self.client = client
        self.paho: paho.Client = paho_client(client)  # the manual-ack route
        self.generation = generation
        self.waiters: dict[int, _Waiter] = {}
        self.loop = client_loop(client)
        self.closed: asyncio.Future[BaseException | None] = self.loop.create_future()
        self.granting = 0  # subscribe calls in flight on this link
        self.up = False  # CONNACK accepted
        self._timer: asyncio.TimerHandle | None = None

    def resolve(self, mid: int, result: Any) -> None:
        waiter = self.waiters.pop(mid, None)
        if waiter is not None and not waiter.future.done():
            waiter.future.set_result(result)

    async def wait(self, mid: int, timeout: float, what: str, subject: object) -> Any:
        """Wait for the acknowledgement of packet ``mid`` (of ``what`` ``subject``, for errors)."""
        loop = self.loop
        future = loop.create_future()
        deadline = loop.time() + timeout
        waiter = self.waiters[mid] = _Waiter(future, deadline, timeout, what, subject)
        timer = self._timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._expire)
        try:
            return await future
        finally:
            if self.waiters.get(mid) is waiter:
                del self.waiters[mid]

    def _expire(self) -> None:
        """Fail the waits past their deadline; wake again at the next deadline."""
        self._timer = None
        now = self.loop.time()
        expired = [mid for mid, waiter in self.waiters.items() if waiter.deadline <= now]
        for mid in expired:
            self.waiters.pop(mid).expire()
        if self.waiters:
            self._timer = self.loop.call_at(min(w.deadline for w in self.waiters.values()), self._expire)

    def fail(self, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters, self.waiters = self.waiters, {}
        for waiter in waiters.values():
            if not waiter.future.done():
                waiter.future.set_exception(HubDisconnected(reason))
