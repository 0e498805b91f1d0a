"""Hub test helpers: a config on a test broker, an inbox of deliveries, a cuttable relay."""

from __future__ import annotations

import asyncio

import aiomqtt

from edgefn.manager.config import HubConfig
from edgefn.manager.hub import Delivery, Hub
from support.broker import Mosquitto

WAIT = 10.0  # generous bound for anything that should take milliseconds


def hub_config(broker: Mosquitto, **overrides: object) -> HubConfig:
    fields: dict[str, object] = {
        "address": broker.address, "host": "127.0.0.1", "port": broker.port, "interval": 1.0,
    }
    fields.update(overrides)
    return HubConfig(**fields)  # type: ignore[arg-type]


class Inbox:
    """Collects deliveries; once ``acking`` is given a hub, acks each one as it arrives."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.acking: Hub | None = None
        self._changed = asyncio.Event()

    def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if self.acking is not None:
            self.acking.ack(delivery)
        self._changed.set()

    @property
    def payloads(self) -> list[bytes]:
        return [d.payload for d in self.deliveries]

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[Delivery]:
        async with asyncio.timeout(timeout):
            while len(self.deliveries) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.deliveries


async def publish(broker: Mosquitto, topic: str, *payloads: bytes, qos: int = 1) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=qos)


async def ready_hub(hub: Hub, topic: str, qos: int = 1) -> Hub:
    await hub.subscribe(topic, qos)
    async with asyncio.timeout(WAIT):
        await hub.wait_ready()
    return hub


class Proxy:
    """A TCP relay in front of a broker whose connections the test can cut."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "Proxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst), name="proxy-pipe")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.transport.abort()


async def wait_generation(hub: Hub, generation: int) -> None:
    async with asyncio.timeout(WAIT):
        while not (hub.connected and hub.generation >= generation):
            await asyncio.sleep(0.02)
        await hub.wait_ready()
