"""examples/custom-runtime end to end: its own runtime.py behind a rule on mosquitto, and edgefn call."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess
from support.mqtt import Probe

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "custom-runtime" / "edgefn.yml"


@pytest.mark.timeout(90)
async def test_the_custom_runtime_answers_a_rule_on_mosquitto(mosquitto: Mosquitto) -> None:
    async with Probe(mosquitto.port, ["shout/out"], qos=1) as probe:
        manager = ManagerProcess(CONFIG, env={"MQTT_ADDRESS": mosquitto.address})
        try:
            await asyncio.to_thread(manager.wait_ready)
            await probe.publish("shout/in", b'"hello"', qos=1)
            assert orjson.loads((await probe.next()).payload) == {"shout": "HELLO!", "function": "shout"}
            await probe.publish("shout/in", b"42", qos=1)  # its own error, as an envelope
            envelope = orjson.loads((await probe.next()).payload)
            assert envelope["errorType"] == "ValueError" and envelope["runtime"] == "custom"
        finally:
            manager.kill()


def edgefn_call(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgefn", "call", "--config", str(CONFIG), "shout", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(90)
def test_edgefn_call_runs_the_custom_runtime_locally() -> None:
    done = edgefn_call("--data", '{"text": "edge"}')
    assert (done.returncode, orjson.loads(done.stdout)) == (0, {"shout": "EDGE!", "function": "shout"})
    failed = edgefn_call("--data", "42")
    assert failed.returncode == 1
    assert orjson.loads(failed.stderr.strip().splitlines()[-1])["errorType"] == "ValueError"


@pytest.mark.timeout(90)
async def test_a_custom_runtime_does_not_outlive_a_manager_killed_with_sigkill(mosquitto: Mosquitto) -> None:
    # runtime.py knows nothing of edgefn's parent pipe: the guard it runs under ends it.
    import signal

    from support.processes import children, wait_gone

    manager = ManagerProcess(CONFIG, env={"MQTT_ADDRESS": mosquitto.address})
    try:
        await asyncio.to_thread(manager.wait_ready)
        guards = children(manager.process.pid)
        runtimes = {pid for guard in guards for pid in children(guard)}
        assert guards and runtimes, "the warm instance runs under its guard"
        manager.process.send_signal(signal.SIGKILL)
        for pid in guards | runtimes:
            await wait_gone(pid, timeout=10)
    finally:
        manager.kill()
