"""examples/thinx-status end to end on mosquitto, run from its own config file as the README says."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiomqtt
import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess
from support.mqtt import Probe

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "thinx-status" / "edgefn.yml"
PRESENCE = "edgefn/thinx-edgefn/status"

REGISTRATION = {
    "mac": "5CCF7FE4631D",
    "firmware": "thinx-firmware-esp8266-1.7.24:2017-07-25",
    "version": "1.7.24",
    "alias": "robotdyn-mega+wifi",
    "platform": "platformio",
}
NOTIFICATION = {
    "title": "Firmware update available",
    "body": "Do you want to update your device now?",
    "type": "action",
    "response_type": "bool",
}


async def live(probe: Probe, timeout: float = 15.0) -> aiomqtt.Message:
    """The next message that is not a retained one left by an earlier run."""
    while True:
        message = await probe.next(timeout)
        if not message.retain:
            return message


async def clear_retained(port: int, *topics: str) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic in topics:
            await client.publish(topic, b"", qos=1, retain=True)


@pytest.mark.timeout(90)
async def test_thinx_status_and_device_channels(mosquitto: Mosquitto) -> None:
    owner, udid = uuid.uuid4().hex, str(uuid.uuid4())
    status, channel = f"/{owner}/{udid}/status", f"/{owner}/{udid}"
    console = f"console/{owner}/{udid}"
    async with (
        Probe(mosquitto.port, [PRESENCE]) as presence,
        Probe(mosquitto.port, [channel], qos=2) as device,
        Probe(mosquitto.port, [f"{console}/notification"], qos=2) as ui,
        Probe(mosquitto.port, ["edgefn/errors/#"]) as errors,
    ):
        manager = ManagerProcess(CONFIG, env={"MQTT_ADDRESS": mosquitto.address})
        try:
            await asyncio.to_thread(manager.wait_ready)
            assert (await live(presence)).payload == b'{"status":"connected"}'

            # A device's own status (retained, QoS 0, as THiNX asks) gets no answer.
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as thing:
                await thing.publish(status, b'{"status":"connected"}', qos=0, retain=True)
            # Its registration is answered on its device channel by comparing versions.
            await device.publish(status, orjson.dumps({"registration": REGISTRATION}), qos=1)
            answer = await device.next()
            assert orjson.loads(answer.payload) == {"registration": {
                "success": True, "status": "UPDATE_AVAILABLE", "owner": owner, "udid": udid, "version": "1.7.25"}}
            await device.publish(status, orjson.dumps({"registration": {**REGISTRATION, "version": "1.7.25"}}))
            assert orjson.loads((await device.next()).payload)["registration"]["status"] == "OK"

            # An actionable notification goes to the console at QoS 2, the user's answer back at QoS 2.
            await device.publish(status, orjson.dumps({"notification": NOTIFICATION}), qos=2)
            relayed = await ui.next()
            assert relayed.qos == 2
            assert orjson.loads(relayed.payload) == {"notification": {
                **NOTIFICATION, "udid": udid, "nid": f"nid:{udid}", "owner": owner}}
            await ui.publish(f"{console}/response", orjson.dumps({"nid": f"nid:{udid}", "response": True}), qos=2)
            reply = await device.next()
            assert reply.qos == 2
            assert orjson.loads(reply.payload) == {"notification": {"nid": f"nid:{udid}", "response": True,
                                                                    "done": True}}

            # A malformed registration is an envelope on the error topic, never a crash.
            await device.publish(status, b'{"registration": {"alias": "no version"}}')
            envelope = orjson.loads((await errors.next()).payload)
            assert envelope["errorType"] == "ValueError" and envelope["functionMessage"]["Topic"] == status
            await device.nothing(within=0.5)  # nothing else reached the device (status message included)

            manager.kill()  # the manager's last will says it is gone
            assert (await live(presence)).payload == b'{"status":"disconnected"}'
        finally:
            manager.kill()
            await clear_retained(mosquitto.port, PRESENCE, status)
