"""examples/nerveshub-channel end to end, run from its own config file as the README says:
on mosquitto over TCP, and over WebSockets (ws://) on a broker that listens on them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiomqtt
import orjson
import pytest

from support.broker import Mosquitto, free_port
from support.manager import ManagerProcess
from support.mqtt import Probe

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "nerveshub-channel" / "edgefn.yml"

UPDATE = {
    "update_available": True,
    "deployment_id": 12,
    "firmware_url": "https://example.com/fw/1.1.10.fw",
    "firmware_meta": {"uuid": "12345-6789-0129435", "architecture": "arm", "platform": "rpi0",
                      "product": "MyProduct", "version": "1.1.10"},
}


async def converse(probe: Probe, serial: str) -> None:
    """The channel's conversation, from the hub's side, through ``probe``."""
    from_hub = f"nerves_hub/devices/{serial}/from_hub"
    await probe.publish(from_hub, orjson.dumps(["j1", "r1", "device", "update", UPDATE]), qos=1)
    answers = [orjson.loads(m.payload) for m in await probe.collect(6, timeout=20)]
    assert answers == [
        *(["j1", "r1", "device", "fwup_progress", {"value": value}] for value in (0, 25, 50, 75, 100)),
        ["j1", "r1", "device", "status_update", {"status": "idle"}],
    ]
    await probe.publish(from_hub, orjson.dumps([None, "r2", "device", "reboot", {}]), qos=1)
    assert orjson.loads((await probe.next(timeout=10)).payload) == [None, "r2", "device", "rebooting", {}]

    # Malformed frames: an envelope each on the device's error topic, never a crash.
    for bad in (b"not json", b'["j1", "r3", "device"]', b'[null, 7, "device", "reboot", {}]'):
        await probe.publish(from_hub, bad, qos=1)
        message = await probe.next(timeout=10)
        assert str(message.topic) == f"nerves_hub/devices/{serial}/errors"
        assert orjson.loads(message.payload)["errorType"] == "TypeError"
    # ... and the channel goes on.
    await probe.publish(from_hub, orjson.dumps([None, "r4", "device", "reboot", {}]), qos=1)
    assert orjson.loads((await probe.next(timeout=10)).payload)[3] == "rebooting"


@pytest.mark.timeout(90)
async def test_nerveshub_update_streams_progress_then_status_and_reboot_answers(mosquitto: Mosquitto) -> None:
    serial = f"nh-{uuid.uuid4().hex[:8]}"
    with ManagerProcess(CONFIG, env={"MQTT_ADDRESS": mosquitto.address}) as manager:
        await asyncio.to_thread(manager.wait_ready)
        topics = [f"nerves_hub/devices/{serial}/to_hub", f"nerves_hub/devices/{serial}/errors"]
        async with Probe(mosquitto.port, topics) as hub:
            await converse(hub, serial)
        assert manager.stop() == 0


class WebSocketProbe(Probe):
    """A Probe that speaks MQTT over WebSockets."""

    def __init__(self, port: int, topics: list[str]) -> None:
        super().__init__(port, topics)
        self._client = aiomqtt.Client("127.0.0.1", port, transport="websockets", websocket_path="/mqtt",
                                      identifier=f"ws-probe-{uuid.uuid4().hex[:8]}")


@pytest.mark.timeout(90)
async def test_nerveshub_over_websockets() -> None:
    # This mosquitto build has no websockets listener; amqtt (the embedded broker's engine) has.
    from amqtt.broker import Broker

    port = free_port()
    broker = Broker({
        "listeners": {"default": {"type": "ws", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    serial = f"nh-{uuid.uuid4().hex[:8]}"
    try:
        address = f"ws://127.0.0.1:{port}/mqtt"
        with ManagerProcess(CONFIG, env={"MQTT_ADDRESS": address}) as manager:
            await asyncio.to_thread(manager.wait_ready)
            topics = [f"nerves_hub/devices/{serial}/to_hub", f"nerves_hub/devices/{serial}/errors"]
            async with WebSocketProbe(port, topics) as hub:
                await converse(hub, serial)
            assert manager.stop() == 0
    finally:
        await broker.shutdown()
