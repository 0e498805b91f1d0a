"""Scheduled rules through a real manager on mosquitto: fires, context, envelopes, hot reload."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import FUNCTIONS, ManagerProcess, python_function, write_config
from support.mqtt import Probe

pytestmark = pytest.mark.timeout(90)


def hub(broker: Mosquitto) -> dict:
    return {"address": broker.address, "clientid": f"sched-{uuid.uuid4().hex[:6]}"}


def scheduled(topic: str, function: str, schedule: dict, **extra: object) -> dict:
    return {"schedule": schedule, "function": {"name": function}, "publish": {"topic": f"{topic}/out", "qos": 1},
            **extra}


@pytest.fixture
def run_manager(tmp_path: Path) -> Iterator:
    """Start a manager on a document (``edgefn run`` or ``dev``); it must stop cleanly after the test."""
    started: list[ManagerProcess] = []

    async def start(document: dict, command: str = "run") -> ManagerProcess:
        manager = ManagerProcess(write_config(tmp_path, document), command=command)
        started.append(manager)
        await asyncio.to_thread(manager.wait_ready, 60)
        return manager

    yield start
    for manager in started:
        assert manager.stop() == 0, manager.log


async def test_every_fires_each_interval_with_the_scheduled_context_and_time_window(
    run_manager, mosquitto: Mosquitto, topic: str
) -> None:
    rule = scheduled(topic, "tick", {"every": "1s", "time_zone": "Australia/Adelaide"},
                     time_filter={"start_param": "from", "end_param": "to", "format": "unix", "interval": "minute"},
                     payload={"meter": 7},
                     clientid=f"only-scheduled-{uuid.uuid4().hex[:6]}")  # a connection with no subscription
    async with Probe(mosquitto.port, [f"{topic}/out"]) as probe:
        manager = await run_manager({"hub": hub(mosquitto), "rules": [rule],
                                     "functions": [python_function("tick", "echo")]})
        messages = await probe.collect(3, timeout=20)
    results = [orjson.loads(message.payload) for message in messages]
    stamps = [result["context"]["messageTimestamp"] for result in results]
    # One fire per second, on the whole second (a fire the loaded machine woke late for may be skipped).
    assert all(later > earlier for earlier, later in zip(stamps, stamps[1:])), manager.log
    for result in results:
        context, event = result["context"], result["event"]
        assert context["messageTopic"] == "" and context["messageQOS"] == 1
        scheduled_time = datetime.fromisoformat(context["scheduledTime"])
        assert scheduled_time.timestamp() == context["messageTimestamp"]
        assert scheduled_time.utcoffset().total_seconds() in (9.5 * 3600, 10.5 * 3600)  # Adelaide's zone
        assert event == {"meter": 7, "from": context["messageTimestamp"] - 60, "to": context["messageTimestamp"]}
    assert all(message.qos == 1 for message in messages)


async def test_a_node_function_sees_the_scheduled_time_too(run_manager, mosquitto: Mosquitto, topic: str) -> None:
    node = {"name": "jsecho", "runtime": "node", "handler": "index.echo", "codedir": str(FUNCTIONS / "js_styles")}
    async with Probe(mosquitto.port, [f"{topic}/out"]) as probe:
        await run_manager({"hub": hub(mosquitto), "functions": [node],
                           "rules": [scheduled(topic, "jsecho", {"every": "1s"}, payload="ping")]})
        result = orjson.loads((await probe.next(timeout=20)).payload)
    assert result["event"] == "ping"
    assert result["context"]["scheduledTime"].endswith("Z")  # UTC, the default zone
    assert result["context"]["messageTopic"] == ""


async def test_a_failing_scheduled_call_publishes_its_envelope_to_the_error_topic(
    run_manager, mosquitto: Mosquitto, topic: str
) -> None:
    rule = scheduled(topic, "boom", {"every": "1s"}, payload={"a": 1}, error={"topic": f"{topic}/err", "qos": 1})
    async with Probe(mosquitto.port, [f"{topic}/err"]) as probe:
        await run_manager({"hub": hub(mosquitto), "rules": [rule],
                           "functions": [python_function("boom", "e2e", "index.raises")]})
        body = orjson.loads((await probe.next(timeout=20)).payload)
    assert body["errorType"] == "TypeError"  # what the fixture raises
    message = body["functionMessage"]
    assert message["Topic"] == "" and message["QOS"] == 1 and message["FunctionName"] == "boom"
    assert orjson.loads(base64.b64decode(message["Payload"])) == {"a": 1}


async def test_hot_reload_starts_a_changed_schedule_at_once_and_stops_a_removed_one(
    run_manager, mosquitto: Mosquitto, topic: str
) -> None:
    functions = [python_function("tick", "echo")]
    document = {"hub": hub(mosquitto), "functions": functions,
                "rules": [scheduled(topic, "tick", {"every": "1h"}, payload="v1")]}
    async with Probe(mosquitto.port, [f"{topic}/out"]) as probe:
        manager = await run_manager(document, command="dev")
        await asyncio.to_thread(manager.wait_for_log, "edgefn.reload: watching")
        await asyncio.sleep(0.2)  # the watches exist just after "watching" is logged
        await probe.nothing(within=1.0)
        document["rules"] = [scheduled(topic, "tick", {"every": "500ms"}, payload="v2")]
        write_config(manager.config.parent, document, manager.config.name)
        result = orjson.loads((await probe.next(timeout=20)).payload)
        assert result["event"] == "v2"
        document["rules"] = []
        write_config(manager.config.parent, document, manager.config.name)
        await asyncio.to_thread(manager.wait_for_log, "rules +0 -1")
        while True:  # fires already in flight when the reload landed may still arrive
            try:
                await probe.next(timeout=1.5)
            except TimeoutError:
                break
        await probe.nothing(within=1.5)
