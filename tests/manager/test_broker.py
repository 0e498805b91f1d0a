"""The embedded amqtt broker: a child process that starts, serves, stops and never outlives us."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from edgefn.manager.broker import BrokerError, EmbeddedBroker
from edgefn.manager.config import HubConfig
from edgefn.manager.hub import Delivery, Hub
from support.broker import free_port

WAIT = 10.0


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def wait_gone(pid: int, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not gone(pid):
            await asyncio.sleep(0.02)


async def test_starts_serves_and_stops_on_a_free_port(topic: str) -> None:
    port = free_port()
    async with EmbeddedBroker(port) as broker:
        assert broker.address == f"tcp://127.0.0.1:{port}"
        pid = broker.pid
        assert pid is not None and os.getsid(pid) != os.getsid(0)  # its own session: no Ctrl-C
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe(f"{topic}/#", 1)
            await client.publish(f"{topic}/a", b"hello", qos=1)
            async with asyncio.timeout(WAIT):
                message = await anext(aiter(client.messages))
        assert (str(message.topic), message.payload) == (f"{topic}/a", b"hello")
    await wait_gone(pid)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_port_zero_picks_a_free_port() -> None:
    async with EmbeddedBroker(0) as broker:
        assert broker.port > 0
        socket.create_connection(("127.0.0.1", broker.port), timeout=1).close()


async def test_a_hub_round_trips_qos1_through_it(topic: str) -> None:
    async with EmbeddedBroker(0) as broker:
        config = HubConfig(port=broker.port, embedded_port=broker.port)
        got: list[Delivery] = []
        arrived = asyncio.Event()

        def on_message(delivery: Delivery) -> None:
            got.append(delivery)
            hub.ack(delivery)
            arrived.set()

        hub = Hub(config, f"{topic}-c", on_message)
        async with hub:
            await hub.subscribe(topic, 1)
            async with asyncio.timeout(WAIT):
                await hub.wait_ready()
                await hub.publish(topic, b"through amqtt", 1)
                await arrived.wait()
        assert [d.payload for d in got] == [b"through amqtt"]


async def test_a_taken_port_names_hub_embedded_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port)
        with pytest.raises(BrokerError, match="hub.embedded.port") as caught:
            await broker.start()
    assert caught.value.in_use and caught.value.port == port
    assert "in use" in str(caught.value)
    assert broker.pid is not None and gone(broker.pid)


async def test_an_impossible_port_fails_with_the_reason() -> None:
    broker = EmbeddedBroker(70000)
    with pytest.raises(BrokerError, match="failed to start") as caught:
        await broker.start()
    assert not caught.value.in_use
    assert broker.pid is not None and gone(broker.pid)


async def test_the_child_exits_when_its_stdin_closes() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "edgefn.manager.broker", "--port", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        hello = json.loads(await asyncio.to_thread(child.stdout.readline))
        assert hello["ready"] is True and hello["pid"] == child.pid
        child.stdin.close()
        assert await asyncio.to_thread(child.wait, WAIT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            stream and stream.close()


PARENT = """
import asyncio, sys
from edgefn.manager.broker import EmbeddedBroker

async def main():
    async with EmbeddedBroker(0) as broker:
        print(broker.pid, flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_the_child_dies_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    child = 0
    try:
        assert parent.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(parent.stdout.readline), WAIT)
        child = int(line)
        assert not gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        started = time.monotonic()
        await wait_gone(child)
        assert time.monotonic() - started < 5
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child and not gone(child):
            os.kill(child, signal.SIGKILL)
        parent.stdout and parent.stdout.close()
