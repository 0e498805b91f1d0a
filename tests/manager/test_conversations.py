"""QoS 2 inputs across a SIGKILL, and presence with a last will, on a real mosquitto.

What a manager killed mid-flight does to QoS 2 inputs is stated in the README
from the first test here.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiomqtt
import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess, python_function, write_config
from support.mqtt import Probe


def qos2_config(folder: Path, broker: Mosquitto, topic: str) -> Path:
    return write_config(folder, {
        "hub": {"address": broker.address, "clientid": f"qos2-{uuid.uuid4().hex[:6]}", "cleansession": False},
        "rules": [{
            "subscribe": {"topic": f"{topic}/in", "qos": 2},
            "function": {"name": "slow"},
            "publish": {"topic": f"{topic}/out", "qos": 2},
        }],
        "functions": [python_function("slow", "e2e", "index.slow", instance={"max": 2})],
        "shutdown": {"timeout": "20s"},
    })


@pytest.mark.timeout(120)
async def test_qos2_inputs_in_flight_at_a_kill_9_are_lost_and_none_is_processed_twice(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    config = qos2_config(tmp_path, mosquitto, topic)
    count = 20
    outputs: list[int] = []
    async with Probe(mosquitto.port, [f"{topic}/out"], qos=2) as probe:
        manager = ManagerProcess(config)
        await asyncio.to_thread(manager.wait_ready)
        for number in range(count):
            await probe.publish(f"{topic}/in", orjson.dumps({"n": number, "sleep": 0.3}), qos=2)
        outputs.append(orjson.loads((await probe.next(timeout=20)).payload)["n"])
        manager.kill()  # most inputs were received (PUBREC sent) and are still being worked on
        with ManagerProcess(config) as again:
            await asyncio.to_thread(again.wait_ready)
            await probe.publish(f"{topic}/in", orjson.dumps({"n": "marker", "sleep": 0}), qos=2)
            while (n := orjson.loads((await probe.next(timeout=30)).payload)["n"]) != "marker":
                outputs.append(n)
            with pytest.raises(TimeoutError):  # nothing else comes: what was in flight is gone
                while True:
                    outputs.append(orjson.loads((await probe.next(timeout=2)).payload)["n"])
            assert again.stop() == 0
    assert len(outputs) == len(set(outputs)), f"an input was processed twice: {outputs}"
    assert len(outputs) < count, "expected the inputs in flight at the kill to be lost"


@pytest.mark.timeout(120)
async def test_a_graceful_stop_finishes_qos2_inputs_even_those_arriving_while_it_drains(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    config = qos2_config(tmp_path, mosquitto, topic)
    count = 16
    outputs: list[int] = []
    async with Probe(mosquitto.port, [f"{topic}/out"], qos=2) as probe:
        manager = ManagerProcess(config)
        await asyncio.to_thread(manager.wait_ready)
        for number in range(count // 2):
            await probe.publish(f"{topic}/in", orjson.dumps({"n": number, "sleep": 0.3}), qos=2)
        outputs.append(orjson.loads((await probe.next(timeout=20)).payload)["n"])
        manager.process.terminate()  # SIGTERM: drain what was taken (about a second of work)
        for number in range(count // 2, count):
            await probe.publish(f"{topic}/in", orjson.dumps({"n": number, "sleep": 0}), qos=2)
        assert await asyncio.to_thread(manager.process.wait, 30) == 0, manager.log
        with ManagerProcess(config) as again:  # what the first one did not take, the broker kept
            await asyncio.to_thread(again.wait_ready)
            while len(outputs) < count:
                outputs.append(orjson.loads((await probe.next(timeout=20)).payload)["n"])
            await probe.nothing(within=0.5)
            assert again.stop() == 0
    assert sorted(outputs) == list(range(count))


def presence_config(folder: Path, broker: Mosquitto, topic: str, clientid: str) -> Path:
    return write_config(folder, {
        "hub": {
            "address": broker.address, "clientid": clientid,
            "status": {"topic": f"{topic}/{{clientid}}/status", "qos": 1, "retain": True},
        },
        "rules": [{
            "subscribe": {"topic": f"{topic}/in", "qos": 1},
            "function": {"name": "echo"},
            "publish": {"topic": f"{topic}/out", "qos": 1},
        }],
        "functions": [python_function("echo", "e2e", "index.echo")],
    })


@pytest.mark.timeout(90)
async def test_presence_online_at_start_will_after_a_kill_9_offline_after_a_graceful_stop(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    clientid = f"edge-{uuid.uuid4().hex[:6]}"
    config = presence_config(tmp_path, mosquitto, topic, clientid)
    status = f"{topic}/{clientid}/status"
    async with Probe(mosquitto.port, [status]) as probe:
        manager = ManagerProcess(config)
        await asyncio.to_thread(manager.wait_ready)
        assert (await probe.next()).payload == b'{"status":"connected"}'
        manager.kill()
        will = await probe.next()  # the broker publishes the last will
        assert will.payload == b'{"status":"disconnected"}'
        with ManagerProcess(config) as again:
            await asyncio.to_thread(again.wait_ready)
            assert (await probe.next()).payload == b'{"status":"connected"}'
            assert again.stop() == 0
        assert (await probe.next()).payload == b'{"status":"disconnected"}'
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:  # retained: newcomers see it
        await client.subscribe(status, qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
        assert (message.payload, message.retain) == (b'{"status":"disconnected"}', True)
        await client.publish(status, b"", qos=1, retain=True)
