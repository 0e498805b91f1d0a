"""examples/uplink-actions end to end on mosquitto, run from its own config file as the README says."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess
from support.mqtt import Probe

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "uplink-actions" / "edgefn.yml"


def action(name: str, **payload: object) -> bytes:
    # uplink carries an action's payload as a JSON string.
    return orjson.dumps({"action_id": uuid.uuid4().hex[:8], "name": name, "payload": orjson.dumps(payload).decode()})


async def responses(probe: Probe, until: set[str], timeout: float = 15) -> list[dict]:
    """action_status responses up to the first whose state is in ``until``."""
    got: list[dict] = []
    while not got or got[-1]["state"] not in until:
        got.append(orjson.loads((await probe.next(timeout)).payload))
    return got


@pytest.mark.timeout(120)
async def test_uplink_actions_stream_their_status_and_a_late_action_fails_once(mosquitto: Mosquitto) -> None:
    tenant, device = "demo", uuid.uuid4().hex[:10]
    actions, status = f"/tenants/{tenant}/devices/{device}/actions", f"/tenants/{tenant}/devices/{device}/action/status"
    with ManagerProcess(CONFIG, env={"MQTT_ADDRESS": mosquitto.address}) as manager:
        await asyncio.to_thread(manager.wait_ready)
        async with Probe(mosquitto.port, [status]) as device_side, Probe(mosquitto.port, ["edgefn/errors/#"]) as errors:
            # A firmware update: Running, Progress…, Completed; sequence from 1, progress 0..100.
            sent = action("update_firmware", steps=4, step_seconds=0.2)
            await device_side.publish(actions, sent, qos=1)
            got = await responses(device_side, {"Completed", "Failed"})
            assert [r["state"] for r in got] == ["Running", "Progress", "Progress", "Progress", "Completed"]
            assert [r["sequence"] for r in got] == [1, 2, 3, 4, 5]
            assert [r["progress"] for r in got] == [0, 25, 50, 75, 100]
            assert {r["action_id"] for r in got} == {orjson.loads(sent)["action_id"]}
            assert all(r["stream"] == "action_status" and r["errors"] == [] for r in got)
            assert [r["timestamp"] for r in got] == sorted(r["timestamp"] for r in got)

            # An action that overruns its timeout (update_firmware: 3 s): one Failed, then silence.
            await device_side.publish(actions, action("update_firmware", steps=4, step_seconds=1.2), qos=1)
            got = await responses(device_side, {"Completed", "Failed"})
            assert [r["state"] for r in got] == ["Running", "Progress", "Progress", "Failed"]
            assert got[-1]["errors"] == ["action timed out after 3s"]
            await device_side.nothing(within=2)

            # An action that hangs past instance.timeout (8 s): edgefn cuts it; its envelope goes
            # to the errors topic and nothing more of it reaches the device.
            await device_side.publish(actions, action("diagnostics", steps=2, step_seconds=30), qos=1)
            assert [r["state"] for r in await responses(device_side, {"Running"})] == ["Running"]
            envelope = orjson.loads((await errors.next(timeout=20)).payload)
            assert envelope["errorType"] == "Runtime.Timeout" and envelope["functionMessage"]["Topic"] == actions
            await device_side.nothing(within=1)

            # An unknown action fails at once; a malformed one is an envelope, never a crash.
            await device_side.publish(actions, action("self_destruct"), qos=1)
            (failed,) = await responses(device_side, {"Failed"})
            assert failed["sequence"] == 1 and "unknown action" in failed["errors"][0]
            await device_side.publish(actions, b'{"name": "reboot"}', qos=1)
            assert orjson.loads((await errors.next()).payload)["errorType"] == "ValueError"
        assert manager.stop() == 0
