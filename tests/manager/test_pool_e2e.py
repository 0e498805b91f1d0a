"""The pool through a real ``edgefn run`` on a real mosquitto (SPEC §6, §8).

A crash is retried per ``retry.max`` and then enveloped; an oversize input's
envelope carries a truncated payload; no runtime outlives a manager killed
with SIGKILL.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
import uuid
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess, python_function, write_config
from support.mqtt import Probe
from support.processes import alive, children, unix_sockets

pytestmark = pytest.mark.timeout(90)


def wait_until(predicate, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def config(folder: Path, broker: Mosquitto, topic: str) -> Path:
    def rule(name: str, function: str) -> dict:
        return {"subscribe": {"topic": f"{topic}/{name}/in", "qos": 1}, "function": {"name": function},
                "publish": {"topic": f"{topic}/{name}/out", "qos": 1}, "retry": {"max": 3}}

    return write_config(
        folder,
        {
            "hub": {"address": broker.address, "clientid": f"pool-e2e-{uuid.uuid4().hex[:6]}"},
            "rules": [rule("crash", "crash"), rule("once", "once"), rule("big", "big")],
            "functions": [
                python_function("crash", "pool_worker", "index.crash", instance={"min": 2, "max": 2}),
                python_function("once", "pool_worker", "index.crash_unless_marked", instance={"min": 1, "max": 1}),
                python_function("big", "pool_worker", "index.pid", instance={"message": {"length": {"max": "2k"}}}),
            ],
            "logger": {"level": "debug"},
            "shutdown": {"timeout": "5s"},
        },
    )


async def test_crash_is_retried_then_enveloped_and_the_next_message_is_served(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    with ManagerProcess(config(tmp_path, mosquitto, topic)) as manager:
        await asyncio.to_thread(manager.wait_ready)
        runtimes = children(manager.process.pid)
        assert len(runtimes) == 3, "min instances are warm at ready"
        async with Probe(mosquitto.port, [f"{topic}/crash/out", f"{topic}/once/out", f"{topic}/big/out"]) as probe:
            await probe.publish(f"{topic}/crash/in", orjson.dumps({"status": 7}))
            body = orjson.loads((await probe.next(timeout=30)).payload)
            assert body["errorType"] == "Runtime.InstanceCrashed" and body["attempts"] == 3
            assert "exited with status 7" in body["errorMessage"]
            assert orjson.loads(base64.b64decode(body["functionMessage"]["Payload"])) == {"status": 7}

            await probe.publish(f"{topic}/crash/in", orjson.dumps({"n": 1}))
            assert "pid" in orjson.loads((await probe.next(timeout=30)).payload)

            marker = tmp_path / "crashed-once"
            await probe.publish(f"{topic}/once/in", orjson.dumps({"marker": str(marker)}))
            answer = await probe.next(timeout=30)
            assert answer.topic.value == f"{topic}/once/out"
            assert orjson.loads(answer.payload)["survived"] is True, "retried on a fresh instance"

            await probe.publish(f"{topic}/big/in", b"[" + b"1," * 2000 + b"1]")
            body = orjson.loads((await probe.next(timeout=30)).payload)
            assert body["errorType"] == "Runtime.MessageTooLarge" and body["attempts"] == 1
            assert body["functionMessage"]["PayloadTruncated"] is True
            assert 0 < len(base64.b64decode(body["functionMessage"]["Payload"])) <= 2048
        assert manager.stop() == 0, manager.log


async def test_no_runtime_outlives_a_manager_killed_with_sigkill(mosquitto: Mosquitto, topic: str, tmp_path: Path) -> None:
    manager = ManagerProcess(config(tmp_path, mosquitto, topic))
    try:
        await asyncio.to_thread(manager.wait_ready)
        runtimes = children(manager.process.pid)
        assert len(runtimes) == 3
        for pid in runtimes:
            (socket,) = unix_sockets(pid)  # listening, and the manager's connection to it
            assert socket.parent.stat().st_mode & 0o777 == 0o700, "instances' sockets are private"
        os.kill(manager.process.pid, signal.SIGKILL)
        manager.process.wait(10)
        await asyncio.to_thread(
            wait_until, lambda: not any(alive(pid) for pid in runtimes), "every runtime exits on its own", 5.0
        )
    finally:
        manager.kill()
