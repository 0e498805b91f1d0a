"""Several outputs per call end to end: a real manager, real runtimes, a real mosquitto."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import FUNCTIONS, ManagerProcess, python_function, write_config
from support.mqtt import Probe


def config(folder: Path, broker: Mosquitto, topic: str, function: dict, **hub: object) -> Path:
    return write_config(folder, {
        "hub": {"address": broker.address, "clientid": f"outputs-{uuid.uuid4().hex[:6]}", **hub},
        "rules": [{
            "subscribe": {"topic": f"{topic}/in/+", "qos": 1},
            "function": {"name": function["name"]},
            "publish": {"topic": f"{topic}/out/{{{topic.count('/') + 3}}}", "qos": 1},
            "error": {"topic": f"{topic}/err", "qos": 1},
        }],
        "functions": [function],
    })


@pytest.mark.timeout(90)
@pytest.mark.parametrize("runtime", ["python", "node"])
async def test_outputs_then_the_result_reach_the_hub_in_order(
    mosquitto: Mosquitto, topic: str, tmp_path: Path, runtime: str
) -> None:
    if runtime == "python":
        function = python_function("f", "outputs", "index.publishes")
    else:
        function = {"name": "f", "runtime": "node", "handler": "index.publishes", "codedir": str(FUNCTIONS / "js_outputs")}
    with ManagerProcess(config(tmp_path, mosquitto, topic, function)) as manager:
        await asyncio.to_thread(manager.wait_ready)
        async with Probe(mosquitto.port, [f"{topic}/out/#", f"{topic}/raw"]) as probe:
            event = {"n": 3, "raw_topic": f"{topic}/raw"}
            await probe.publish(f"{topic}/in/dev1", orjson.dumps(event), qos=1)
            got = await probe.collect(5, timeout=30)
            await probe.publish(f"{topic}/raw", b"", qos=1)  # clear the retained output
        assert manager.stop() == 0
    assert [(str(m.topic), m.payload) for m in got[:3]] == [(f"{topic}/out/dev1", b'{"i":%d}' % i) for i in range(3)]
    assert (str(got[3].topic), got[3].payload, got[3].qos) == (f"{topic}/raw", b"raw", 0)
    assert str(got[4].topic) == f"{topic}/out/dev1" and orjson.loads(got[4].payload)["done"] == f"{topic}/in/dev1"


@pytest.mark.timeout(90)
async def test_a_timed_out_call_keeps_its_outputs_then_its_envelope_then_silence(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    function = python_function("f", "outputs", "index.slow", instance={"timeout": "1s"})
    with ManagerProcess(config(tmp_path, mosquitto, topic, function)) as manager:
        await asyncio.to_thread(manager.wait_ready)
        async with Probe(mosquitto.port, [f"{topic}/out/#", f"{topic}/err"]) as probe:
            await probe.publish(f"{topic}/in/dev1", b'{"n": 20, "every": 0.3}', qos=1)
            seen = []
            while True:
                message = await probe.next(timeout=20)
                if str(message.topic) == f"{topic}/err":
                    break
                seen.append(orjson.loads(message.payload)["i"])
            assert orjson.loads(message.payload)["errorType"] == "Runtime.Timeout"
            assert seen == list(range(len(seen))) and seen
            await probe.nothing(within=1.5)  # the call's later outputs are dropped
        assert manager.stop() == 0


@pytest.mark.timeout(120)
async def test_a_manager_killed_between_outputs_gets_the_input_redelivered(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    # QoS 1, a persistent session (cleansession false, a fixed clientid): what was never
    # acknowledged comes back to the next manager, which runs the call again from the start.
    function = python_function("f", "outputs", "index.slow")
    path = config(tmp_path, mosquitto, topic, function, cleansession=False)
    async with Probe(mosquitto.port, [f"{topic}/out/#"]) as probe:
        manager = ManagerProcess(path)
        await asyncio.to_thread(manager.wait_ready)
        await probe.publish(f"{topic}/in/dev1", b'{"n": 4, "every": 0.5}', qos=1)
        first = await probe.collect(2, timeout=20)
        assert [orjson.loads(m.payload) for m in first] == [{"i": 0}, {"i": 1}]
        manager.kill()  # SIGKILL between outputs: the input was not acknowledged
        with ManagerProcess(path) as again:
            await asyncio.to_thread(again.wait_ready)
            replies = []
            while not replies or replies[-1] != {"done": True}:
                replies.append(orjson.loads((await probe.next(timeout=30)).payload))
            assert again.stop() == 0
    # Anything still in flight at the kill may land; then the redelivered call's every output, then its result.
    assert replies[-5:] == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}, {"done": True}]
