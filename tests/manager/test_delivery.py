"""QoS 1 at-least-once and graceful shutdown, on a real mosquitto (SPEC §6, §2)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess, python_function, write_config
from support.mqtt import Probe


def slow_config(folder: Path, broker: Mosquitto, topic: str, *, sleep_max: int = 2) -> Path:
    return write_config(
        folder,
        {
            "hub": {"address": broker.address, "clientid": f"delivery-{uuid.uuid4().hex[:6]}"},
            "rules": [
                {
                    "subscribe": {"topic": f"{topic}/in", "qos": 1},
                    "function": {"name": "slow"},
                    "publish": {"topic": f"{topic}/out", "qos": 1},
                }
            ],
            "functions": [
                python_function("slow", "e2e", "index.slow", instance={"max": sleep_max, "concurrency": 1})
            ],
            "shutdown": {"timeout": "20s"},
            "logger": {"level": "debug"},
        },
    )


@pytest.mark.timeout(120)
async def test_qos1_inputs_unacknowledged_at_a_kill_9_all_produce_results(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    config = slow_config(tmp_path, mosquitto, topic)
    count = 20
    async with Probe(mosquitto.port, [f"{topic}/out"]) as probe:
        manager = ManagerProcess(config)
        await asyncio.to_thread(manager.wait_ready)
        for number in range(count):
            await probe.publish(f"{topic}/in", orjson.dumps({"n": number, "sleep": 0.3}), qos=1)
        first = await probe.next(timeout=20)  # some work is done, most is still unacknowledged
        manager.kill()
        seen = {orjson.loads(first.payload)["n"]}
        with ManagerProcess(config) as again:
            await asyncio.to_thread(again.wait_ready)
            while len(seen) < count:
                message = await probe.next(timeout=30)
                seen.add(orjson.loads(message.payload)["n"])
            assert again.stop() == 0
    assert seen == set(range(count))


@pytest.mark.timeout(120)
async def test_sigterm_finishes_calls_in_flight_then_exits_0(mosquitto: Mosquitto, topic: str, tmp_path: Path) -> None:
    config = slow_config(tmp_path, mosquitto, topic)
    async with Probe(mosquitto.port, [f"{topic}/out"]) as probe:
        with ManagerProcess(config) as manager:
            await asyncio.to_thread(manager.wait_ready)
            for number in range(2):
                await probe.publish(f"{topic}/in", orjson.dumps({"n": number, "sleep": 1.5}), qos=1)
            await asyncio.to_thread(manager.wait_for_log, "slow#2 started")  # both calls are in flight
            code = await asyncio.to_thread(manager.stop)
            results = await probe.collect(2, timeout=10)
    assert code == 0, manager.log
    assert sorted(orjson.loads(m.payload)["n"] for m in results) == [0, 1]
