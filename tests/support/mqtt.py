"""A test MQTT client on a real broker: subscribe first, then publish and wait."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import aiomqtt


class Probe:
    """Subscribes to ``topics`` on enter; ``next()`` waits for the next message."""

    def __init__(self, port: int, topics: Sequence[str] = (), qos: int = 1) -> None:
        self._client = aiomqtt.Client("127.0.0.1", port, identifier=f"probe-{uuid.uuid4().hex[:8]}")
        self._topics = list(topics)
        self._qos = qos
        self._queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Probe":
        await self._client.__aenter__()
        for topic in self._topics:
            await self._client.subscribe(topic, qos=self._qos)
        self._reader = asyncio.create_task(self._read(), name="probe-reader")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for message in self._client.messages:
            self._queue.put_nowait(message)

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        await self._client.publish(topic, payload, qos=qos)

    async def next(self, timeout: float = 10.0) -> aiomqtt.Message:
        """The next message; TimeoutError if none comes within ``timeout``."""
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    async def collect(self, count: int, timeout: float = 20.0) -> list[aiomqtt.Message]:
        """Exactly ``count`` messages (or TimeoutError)."""
        async with asyncio.timeout(timeout):
            return [await self._queue.get() for _ in range(count)]

    async def nothing(self, within: float) -> None:
        """Assert that no message arrives within ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                message = await self._queue.get()
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message on {message.topic}: {message.payload!r}")
