"""Node functions through a real manager on mosquitto (issue #4 points 3–4; SPEC §5–8).

One manager serves every rule below, each with its own topics and function, so a
crash or a kill in one test never touches another. Every instance is a real
``node runtimes/node/index.js`` process the manager spawned; faults are observed
as the envelopes a subscriber receives, and processes through /proc.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from edgefn.manager.launch import LaunchError, node_executable
from support.broker import Mosquitto
from support.manager import FUNCTIONS, ManagerProcess, write_config
from support.mqtt import Probe
from support.processes import children, wait_gone

REPO = FUNCTIONS.parent.parent
SAYJS = REPO / "functions" / "sayjs"
POOL_CASE = FUNCTIONS / "node_pool"
TIMEOUT = 2.0  # the hanging functions' instance.timeout, seconds
SMALL = 1024  # the size-limited function's message.length.max

pytestmark = pytest.mark.timeout(90)


def node_function(name: str, handler: str, codedir: Path = POOL_CASE, **instance: object) -> dict:
    return {"name": name, "runtime": "node", "handler": handler, "codedir": str(codedir), "instance": instance}


# rule name → its function (each rule subscribes <prefix>/<name>/in, publishes <prefix>/<name>/out)
FUNCTIONS_BY_RULE = {
    "sayjs": node_function("sayjs", "index.handler", SAYJS),
    "echo": node_function("echo-js", "index.echo"),
    "crash": node_function("crash-js", "index.exits"),
    "kill": node_function("kill-js", "index.pid", min=1),
    "hang": node_function("hang-js", "index.hangs", min=2, max=2, timeout=f"{TIMEOUT}s"),
    "hangasync": node_function("hangasync-js", "index.hangsAsync", min=2, max=2, timeout=f"{TIMEOUT}s"),
    "small": node_function("small-js", "index.big", message={"length": {"max": f"{SMALL}b"}}),
}


@pytest.fixture(scope="module")
def node() -> str:
    """The node the manager will run; a loud failure (never a skip) without it."""
    try:
        return node_executable()
    except LaunchError as exc:
        pytest.fail(f"the Node pool tests need Node.js: {exc}")


@dataclass
class Deployment:
    port: int
    prefix: str
    manager: ManagerProcess

    def topic(self, rule: str, direction: str) -> str:
        return f"{self.prefix}/{rule}/{direction}"

    def probe(self, rule: str) -> Probe:
        return Probe(self.port, [self.topic(rule, "out")])

    async def send(self, probe: Probe, rule: str, payload: bytes | object) -> None:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        await probe.publish(self.topic(rule, "in"), data, qos=1)

    async def roundtrip(self, rule: str, payload: bytes | object) -> object:
        """Publish one input to ``rule``; the JSON of its one output (result or envelope)."""
        async with self.probe(rule) as probe:
            await self.send(probe, rule, payload)
            return orjson.loads((await probe.next(timeout=30)).payload)


@pytest.fixture(scope="module")
def deployment(node: str, mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    prefix = f"edgefn-node/{uuid.uuid4().hex[:8]}"
    rules = [
        {
            "subscribe": {"topic": f"{prefix}/{rule}/in", "qos": 1},
            "function": {"name": function["name"]},
            "publish": {"topic": f"{prefix}/{rule}/out", "qos": 1},
            "retry": {"max": 3},
        }
        for rule, function in FUNCTIONS_BY_RULE.items()
    ]
    document = {
        "hub": {"address": mosquitto.address, "clientid": f"node-{uuid.uuid4().hex[:6]}"},
        "rules": rules,
        "functions": list(FUNCTIONS_BY_RULE.values()),
        "logger": {"level": "debug"},  # instance starts are logged at debug: the tests wait on them
    }
    config = write_config(tmp_path_factory.mktemp("node"), document)
    with ManagerProcess(config) as manager:
        manager.wait_ready(60)
        yield Deployment(mosquitto.port, prefix, manager)
        assert manager.stop() == 0, manager.log


# -- processes ---------------------------------------------------------------------------------


# -- Baetyl's sayjs example ----------------------------------------------------------------------


async def test_sayjs_example_greets_a_json_object_with_its_context(deployment: Deployment) -> None:
    result = await deployment.roundtrip("sayjs", {"id": 1})
    assert isinstance(result, dict)
    assert result.pop("Say") == "Hello Baetyl"
    assert result.pop("id") == 1
    assert result.pop("messageTopic") == deployment.topic("sayjs", "in")
    assert result.pop("functionName") == "sayjs"
    assert result.pop("messageQOS") == 1
    assert isinstance(result.pop("messageTimestamp"), int)
    assert len(result.pop("functionInvokeID")) == 36
    assert result == {}


async def test_sayjs_example_wraps_a_non_json_payload_as_bytes(deployment: Deployment) -> None:
    result = await deployment.roundtrip("sayjs", b"hello \xe2\x9c\x93 edge")
    assert isinstance(result, dict)
    assert (result["bytes"], result["Say"], result["functionName"]) == ("hello \u2713 edge", "Hello Baetyl", "sayjs")


async def test_callback_type_error_envelope_holds_only_user_frames(deployment: Deployment) -> None:
    envelope = await deployment.roundtrip("sayjs", {"err": "no greeting today"})
    assert isinstance(envelope, dict)
    assert (envelope["errorType"], envelope["errorMessage"]) == ("TypeError", "no greeting today")
    line = next(n for n, text in enumerate((SAYJS / "index.js").read_text().splitlines(), 1) if "new TypeError" in text)
    assert len(envelope["errorStack"]) == 1
    assert re.fullmatch(rf"at (exports\.handler|handler) \(index\.js:{line}:\d+\)", envelope["errorStack"][0])
    assert envelope["attempts"] == 1  # the user's answer is final at once
    assert base64.b64decode(envelope["functionMessage"]["Payload"]) == b'{"err":"no greeting today"}'


# -- results -----------------------------------------------------------------------------------


async def test_empty_string_zero_and_false_are_published_null_is_not(deployment: Deployment) -> None:
    # One instance, one call at a time: outputs come in input order, so "end" closes the list.
    async with deployment.probe("echo") as probe:
        for payload in (b'""', b"0", b"false", b"null", b'"end"'):
            await deployment.send(probe, "echo", payload)
        outputs = []
        while not outputs or outputs[-1] != b'"end"':
            outputs.append(bytes((await probe.next(timeout=30)).payload))
    assert outputs == [b'""', b"0", b"false", b'"end"']


# -- crashes -----------------------------------------------------------------------------------


async def test_a_crashing_handler_is_retried_then_enveloped_and_a_replacement_serves_next(
    deployment: Deployment,
) -> None:
    async with deployment.probe("crash") as probe:
        await deployment.send(probe, "crash", {"exit": True})
        envelope = orjson.loads((await probe.next(timeout=30)).payload)
        await deployment.send(probe, "crash", {})
        after = orjson.loads((await probe.next(timeout=30)).payload)
    assert envelope["errorType"] == "Runtime.InstanceCrashed", envelope
    assert "exited with status 1" in envelope["errorMessage"]
    assert envelope["attempts"] == 3  # retry.max total attempts, each on a fresh instance
    assert envelope["runtime"] == "node"
    assert after["pid"] in children(deployment.manager.process.pid)


async def test_a_crash_on_the_first_attempt_is_retried_on_a_new_instance(
    deployment: Deployment, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed-once"
    result = await deployment.roundtrip("crash", {"exit": True, "once": str(marker)})
    assert isinstance(result, dict) and result["retried"] is True
    assert result["pid"] != int(marker.read_text())


async def test_an_instance_killed_from_outside_is_replaced_and_serves_the_next_message(
    deployment: Deployment,
) -> None:
    manager_pid = deployment.manager.process.pid
    first = await deployment.roundtrip("kill", {})
    assert isinstance(first, dict) and first["pid"] in children(manager_pid)
    os.kill(first["pid"], signal.SIGKILL)
    await wait_gone(first["pid"])
    second = await deployment.roundtrip("kill", {})
    assert isinstance(second, dict)
    assert second["pid"] != first["pid"] and second["pid"] in children(manager_pid)


# -- sizes -------------------------------------------------------------------------------------


async def test_an_oversize_input_is_enveloped_with_its_payload_truncated(deployment: Deployment) -> None:
    payload = bytes(range(256)) * 8  # 2 KiB, above the function's 1 KiB
    envelope = await deployment.roundtrip("small", payload)
    assert isinstance(envelope, dict)
    assert envelope["errorType"] == "Runtime.MessageTooLarge"
    message = envelope["functionMessage"]
    assert message["PayloadTruncated"] is True
    assert base64.b64decode(message["Payload"]) == payload[:SMALL]
    assert (message["FunctionName"], message["Topic"]) == ("small-js", deployment.topic("small", "in"))


async def test_an_oversize_result_is_enveloped_as_message_too_large(deployment: Deployment) -> None:
    envelope = await deployment.roundtrip("small", {"size": SMALL})  # JSON adds two quotes
    assert isinstance(envelope, dict)
    assert envelope["errorType"] == "Runtime.MessageTooLarge"
    assert "result" in envelope["errorMessage"] and "PayloadTruncated" not in envelope["functionMessage"]
    assert envelope["attempts"] == 1
    assert await deployment.roundtrip("small", {"size": SMALL - 2}) == "x" * (SMALL - 2)  # the limit itself fits


# -- timeouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["hang", "hangasync"])  # never calls back; never resolves
async def test_a_hung_call_times_out_its_instance_is_replaced_and_others_go_on(
    deployment: Deployment, rule: str
) -> None:
    function = FUNCTIONS_BY_RULE[rule]["name"]
    token = uuid.uuid4().hex[:8]
    async with deployment.probe(rule) as probe:
        await deployment.send(probe, rule, {"hang": token})
        line = await asyncio.to_thread(deployment.manager.wait_for_log, f"hanging {token}: pid=", 15)
        hung = int(line.rsplit("pid=", 1)[1].split()[0])
        await deployment.send(probe, rule, {})  # the other instance answers while one hangs
        answered = orjson.loads((await probe.next(timeout=TIMEOUT)).payload)
        envelope = orjson.loads((await probe.next(timeout=TIMEOUT + 10)).payload)
        await wait_gone(hung)
        # min is 2: the pool starts a third instance in place of the killed one.
        line = await asyncio.to_thread(deployment.manager.wait_for_log, f"{function}#3 started (pid ", 15)
        replacement = int(line.rsplit("(pid ", 1)[1].split(")")[0])
        await deployment.send(probe, rule, {})
        after = orjson.loads((await probe.next(timeout=30)).payload)
    assert answered["pid"] != hung
    assert envelope["errorType"] == "Runtime.Timeout"
    assert envelope["attempts"] == 1  # a timeout is final at once
    assert replacement != hung and replacement in children(deployment.manager.process.pid)
    assert after["pid"] != hung


# -- shutdown ----------------------------------------------------------------------------------


async def test_sigterm_lets_a_slow_node_call_publish_then_exits_0(
    node: str, mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {
        "hub": {"address": mosquitto.address, "clientid": f"node-drain-{uuid.uuid4().hex[:6]}"},
        "rules": [{"subscribe": {"topic": f"{topic}/in", "qos": 1}, "function": {"name": "slow-js"},
                   "publish": {"topic": f"{topic}/out", "qos": 1}}],
        "functions": [node_function("slow-js", "index.slow", max=2)],
        "shutdown": {"timeout": "20s"},
        "logger": {"level": "debug"},
    })
    async with Probe(mosquitto.port, [f"{topic}/out"]) as probe:
        with ManagerProcess(config) as manager:
            await asyncio.to_thread(manager.wait_ready)
            for number in range(2):
                await probe.publish(f"{topic}/in", orjson.dumps({"n": number, "ms": 1500}), qos=1)
            await asyncio.to_thread(manager.wait_for_log, "slow-js#2 started")  # both calls are in flight
            instances = children(manager.process.pid)
            code = await asyncio.to_thread(manager.stop)
            results = await probe.collect(2, timeout=10)
    assert code == 0, manager.log
    assert sorted(orjson.loads(m.payload)["n"] for m in results) == [0, 1]
    assert "unexpectedly" not in manager.log  # the pool stopped its instances: no crash reported
    for pid in instances:
        await wait_gone(pid, timeout=1)  # none outlives the manager
