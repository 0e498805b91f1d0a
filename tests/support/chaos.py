"""Chaos scenarios: a real ``edgefn run`` on a real mosquitto, disturbed, and every QoS 1 input counted.

Shared by ``tests/chaos/`` (small counts, every outcome asserted) and
``bench/chaos.py`` (larger counts, a table). It lives in ``tests/support``
because the benches already import the tests' support (one broker helper for
both), while the tests never import ``bench/``.

Each message carries an id in its payload (``{"id": N, ...}``, or ``id=N;``
before raw bytes); the fixture function echoes it, and an error envelope
carries the input back (``functionMessage.Payload``, base64). So every output
names the input it answers, and a scenario counts, per input: answered (by a
result or its own envelope), lost (answered by nothing), duplicated (answered
more than once), and whether the answer was the expected one (a result, or an
envelope of the expected ``errorType``).

Every scenario runs on its own mosquitto with persistence on, with
``cleansession: false`` and fixed client ids, so the broker keeps every session
across a manager's or its own restart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import orjson

from support.broker import MOSQUITTO, Mosquitto, wait_for_port
from support.manager import FUNCTIONS, ManagerProcess, python_function, write_config
from support.processes import alive, children

FUNCTION = FUNCTIONS / "chaos"
RESULT = "result"
PERSISTENCE = """\
user root
persistence true
persistence_location {folder}/
autosave_interval 1
"""
# How long a scenario may take to answer everything before what is missing counts as lost.
ANSWER_WITHIN = 40.0
# After the last answer, how long duplicates are waited for.
SETTLE = 0.3
_ID = re.compile(rb'^\{"id":\s*(\d+)|^id=(\d+);')

Expected = list[tuple[bytes, str]]  # each input's payload and the answer it must get: RESULT or an errorType


# -- the broker -------------------------------------------------------------------------


class Broker:
    """A mosquitto keeping its sessions and queued messages on disk; ``restart()`` keeps its port.

    (``user root``: mosquitto started as root drops to the ``mosquitto`` user,
    which could not write the temp folder; as another user it is ignored.)
    """

    def __init__(self) -> None:
        self.store = Path(tempfile.mkdtemp(prefix="ef-chaos-"))
        self.mosquitto = Mosquitto.start(PERSISTENCE.format(folder=self.store))

    @property
    def port(self) -> int:
        return self.mosquitto.port

    def restart(self) -> None:
        """Stop it gracefully (it saves its database) and start it again on the same port."""
        old = self.mosquitto
        old.process.terminate()
        old.process.wait(10)
        if old.process.stderr:
            old.process.stderr.close()
        old.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(old.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        wait_for_port(old.port)

    def stop(self) -> None:
        self.mosquitto.stop()
        shutil.rmtree(self.store, ignore_errors=True)


# -- counting answers ---------------------------------------------------------------------


def message_id(payload: bytes) -> int | None:
    """The id an input (or an echoed result) carries, if any."""
    match = _ID.match(payload)
    return int(match.group(1) or match.group(2)) if match else None


class Tally:
    """Every answer seen, by input id: ``"result"`` or the envelope's errorType."""

    def __init__(self) -> None:
        self.answers: dict[int, list[str]] = defaultdict(list)
        self.strays = 0  # outputs naming no input
        self._changed = asyncio.Event()

    def add(self, payload: bytes, envelope: bool) -> None:
        kind, number = RESULT, message_id(payload)
        if envelope:
            data = orjson.loads(payload)
            kind = str(data["errorType"])
            number = message_id(base64.b64decode(data["functionMessage"]["Payload"]))
        if number is None:
            self.strays += 1
        else:
            self.answers[number].append(kind)
        self._changed.set()

    async def wait_answered(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` distinct inputs have an answer; False if ``timeout`` passes first."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.answers) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True


class Collector:
    """Subscribes to a scenario's outputs with a persistent session, reconnecting across broker restarts."""

    def __init__(self, port: int, topic: str, tally: Tally) -> None:
        self.port, self.topic, self.tally = port, topic, tally
        self.clientid = f"chaos-collector-{topic.rsplit('/', 1)[-1]}"
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Collector":
        self._task = asyncio.create_task(self._listen(), name="chaos-collector")
        async with asyncio.timeout(10):
            await self.subscribed.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.clientid,
                                          clean_session=False) as client:
                    await client.subscribe(f"{self.topic}/out", qos=1)
                    await client.subscribe(f"{self.topic}/err", qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.tally.add(message.payload, envelope=message.topic.value.endswith("/err"))  # type: ignore[arg-type]
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)  # the broker is restarting


async def publish_all(port: int, topic: str, payloads: list[bytes]) -> None:
    """Publish every payload at QoS 1 (up to 10 awaiting their PUBACK at once: aiomqtt warns beyond)."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"chaos-publisher-{os.getpid()}") as client:
        for start in range(0, len(payloads), 10):
            await asyncio.gather(*(client.publish(topic, payload, qos=1) for payload in payloads[start:start + 10]))


# -- payloads -------------------------------------------------------------------------------


def payload(number: int, **fields: object) -> bytes:
    return orjson.dumps({"id": number, **fields})


def steady(**fields: object) -> Callable[[int], Expected]:
    """Inputs that all carry ``fields`` and must all get their result."""
    return lambda count: [(payload(n, **fields), RESULT) for n in range(count)]


def mixed(bad: Mapping[str, object], every: int, answer: str) -> Callable[[int], Expected]:
    """Every ``every``-th input misbehaves as ``bad`` and must be answered by ``answer``; the rest echo."""
    def make(count: int) -> Expected:
        return [(payload(n, **bad), answer) if n % every == every - 1 else (payload(n), RESULT)
                for n in range(count)]
    return make


def random_payloads(count: int, seed: int = 11) -> Expected:
    """Seeded random inputs: JSON of every shape (big integers, unicode, nesting) and raw bytes."""
    rng = random.Random(seed)
    made: Expected = []
    for number in range(count):
        if rng.random() < 0.2:
            raw = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 512)))
            made.append((f"id={number};".encode() + raw, RESULT))
        else:
            text = json.dumps({"id": number, "data": _value(rng, 4)}, ensure_ascii=rng.random() < 0.5)
            made.append((text.encode(), RESULT))
    return made


def _value(rng: random.Random, depth: int) -> object:
    kinds = ["int", "big", "float", "str", "bool", "null"] + (["list", "dict"] if depth else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randrange(-2**63, 2**63)
    if kind == "big":
        return rng.randrange(-10**30, 10**30)
    if kind == "float":
        return rng.uniform(-1e300, 1e300)
    if kind == "str":
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD7FF)]))
                       for _ in range(rng.randrange(0, 40)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_value(rng, depth - 1) for _ in range(rng.randrange(0, 5))]
    if kind == "dict":
        return {f"k{i}": _value(rng, depth - 1) for i in range(rng.randrange(0, 5))}
    return None


def oversize(count: int) -> Expected:
    """Inputs over instance.message.length.max (64k) and results over it, among normal ones."""
    made: Expected = []
    for n in range(count):
        if n % 4 == 1:
            made.append((payload(n, pad="i" * 100_000), "Runtime.MessageTooLarge"))
        elif n % 4 == 3:
            made.append((payload(n, do="big", size=100_000), "Runtime.MessageTooLarge"))
        else:
            made.append((payload(n), RESULT))
    return made


# -- running one --------------------------------------------------------------------------


@dataclass
class Run:
    """One scenario in progress: its broker, config, manager and answers."""

    broker: Broker
    config: Path
    manager: ManagerProcess
    tally: Tally
    restarts: int = 0

    async def kill_runtime(self) -> None:
        """SIGKILL one of the manager's runtime processes (they are busy: the call in it is lost)."""
        pids = children(self.manager.process.pid)
        assert pids, "no runtime process to kill"
        os.kill(max(pids), signal.SIGKILL)
        await asyncio.to_thread(self.manager.wait_for_log, "killed by signal 9 unexpectedly")

    async def restart_manager(self) -> None:
        """SIGKILL the manager and start it again with the same config (same client id, same session)."""
        await asyncio.to_thread(self.manager.kill)
        self.manager = ManagerProcess(self.config)
        self.restarts += 1
        await asyncio.to_thread(self.manager.wait_ready)

    async def restart_broker(self) -> None:
        await asyncio.to_thread(self.broker.restart)


@dataclass(frozen=True)
class Scenario:
    """A stream of inputs, a function config, and what goes wrong mid-run."""

    name: str
    count: int  # inputs, in the test suite
    inputs: Callable[[int], Expected]
    instance: Mapping[str, object] = field(default_factory=dict)
    disturb: Callable[[Run], Awaitable[None]] | None = None
    at: float = 0.3  # the disturbance comes once this share of the inputs is answered
    repeats: bool = False  # at-least-once: a kill may answer an input twice


@dataclass
class Outcome:
    """What a scenario did to its inputs."""

    scenario: str
    messages: int
    lost: int
    duplicated: int
    envelopes: int
    alive: bool
    wrong: dict[int, tuple[str, list[str]]]  # id → (expected, answers) where the first answer differs
    seconds: float
    strays: int = 0
    exit_code: int | None = None
    left_running: int = 0  # processes of the function still running once the manager stopped


HEADER = (f"{'scenario':<16} {'messages':>8} {'lost':>5} {'duplicated':>10} {'envelopes':>9} "
          f"{'manager alive':>13} {'left running':>12} {'seconds':>8}")


def row(outcome: Outcome) -> str:
    return (f"{outcome.scenario:<16} {outcome.messages:>8} {outcome.lost:>5} {outcome.duplicated:>10} "
            f"{outcome.envelopes:>9} {'yes' if outcome.alive else 'NO':>13} {outcome.left_running:>12} "
            f"{outcome.seconds:>8.1f}")


def _config(folder: Path, broker: Broker, scenario: Scenario, topic: str) -> Path:
    instance = {"max": 2, "timeout": "2s", "message": {"length": {"max": "64k"}}, **scenario.instance}
    return write_config(folder, {
        "hub": {"address": broker.mosquitto.address, "clientid": f"chaos-{scenario.name}",
                "cleansession": False, "interval": "1s"},
        "rules": [{"subscribe": {"topic": f"{topic}/in", "qos": 1}, "function": {"name": "chaos"},
                   "publish": {"topic": f"{topic}/out", "qos": 1}, "error": {"topic": f"{topic}/err", "qos": 1},
                   "retry": {"max": 3}}],
        "functions": [python_function("chaos", "chaos", instance=instance)],
        "shutdown": {"timeout": "5s"},
    })


async def run(scenario: Scenario, folder: Path, count: int | None = None) -> Outcome:
    """Run ``scenario`` with ``count`` inputs (its own default if None) and count the answers."""
    expected = scenario.inputs(count or scenario.count)
    topic = f"chaos/{scenario.name}"
    broker = Broker()
    started = time.monotonic()
    try:
        config = _config(folder, broker, scenario, topic)
        tally = Tally()
        async with Collector(broker.port, topic, tally):
            manager = ManagerProcess(config)
            state = Run(broker, config, manager, tally)
            try:
                await asyncio.to_thread(manager.wait_ready)
                await publish_all(broker.port, f"{topic}/in", [body for body, _ in expected])
                if scenario.disturb is not None:
                    await tally.wait_answered(max(1, int(len(expected) * scenario.at)), ANSWER_WITHIN)
                    await scenario.disturb(state)
                if await tally.wait_answered(len(expected), ANSWER_WITHIN):
                    await asyncio.sleep(SETTLE)  # a duplicate, if any, shows up now
                alive = state.manager.process.poll() is None
                code = await asyncio.to_thread(state.manager.stop)
            finally:
                state.manager.kill()
        outcome = _outcome(scenario.name, expected, tally, alive, code, time.monotonic() - started)
        outcome.left_running = await _left_running(FUNCTION)
        return outcome
    finally:
        await asyncio.to_thread(broker.stop)


async def _left_running(folder: Path, within: float = 5.0) -> int:
    """How many processes still run in ``folder`` (runtimes and what they forked) after ``within`` seconds.

    The runtimes of a manager killed with SIGKILL notice on their own; give them that long.
    """
    deadline = time.monotonic() + within
    while (found := _running_in(folder)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return len(found)


def _running_in(folder: Path) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == str(folder) and alive(int(entry)):
            found.add(int(entry))
    return found


def _outcome(name: str, expected: Expected, tally: Tally, alive: bool, code: int, seconds: float) -> Outcome:
    answers = tally.answers
    wrong = {n: (want, answers.get(n, [])) for n, (_, want) in enumerate(expected)
             if n in answers and answers[n][0] != want}
    return Outcome(
        scenario=name,
        messages=len(expected),
        lost=sum(1 for n in range(len(expected)) if n not in answers),
        duplicated=sum(len(kinds) - 1 for kinds in answers.values()),
        envelopes=sum(1 for kinds in answers.values() for kind in kinds if kind != RESULT),
        alive=alive,
        wrong=wrong,
        seconds=seconds,
        strays=tally.strays,
        exit_code=code,
    )


# -- the scenarios ----------------------------------------------------------------------------

SLOW = {"do": "slow", "sleep": 0.05}

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("kill-runtime", 60, steady(**SLOW), disturb=Run.kill_runtime),
    Scenario("kill-manager", 60, steady(**SLOW), disturb=Run.restart_manager, repeats=True),
    Scenario("restart-broker", 60, steady(**SLOW), disturb=Run.restart_broker, repeats=True),
    Scenario("hung-handler", 20, mixed({"do": "hang"}, 5, "Runtime.Timeout"), {"timeout": "1s"}),
    Scenario("memory-hog", 20, mixed({"do": "hog"}, 5, "Runtime.OutOfMemory"), {"memory": "64m"}),
    Scenario("os-exit", 20, mixed({"do": "exit"}, 5, "Runtime.InstanceCrashed")),
    Scenario("forking", 20, mixed({"do": "fork"}, 2, RESULT)),
    Scenario("stdout-flood", 20, mixed({"do": "flood"}, 5, RESULT)),
    Scenario("random-payloads", 1000, random_payloads, {"max": 2}),
    Scenario("oversize", 20, oversize),
)}
