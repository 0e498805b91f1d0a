"""Two managers sharing one subscription (``$share/g/...``) on mosquitto, one of them killed.

The README's "Scale-out" section states what these tests show, no more.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.chaos import publish_all
from support.manager import ManagerProcess, python_function, write_config
from support.mqtt import Probe

COUNT = 2000
QUIET = 2.0  # no answer for this long: whatever is missing is not coming (with a member down)
LINGER = 0.3  # once every input is answered, how long repeats are waited for


def member(folder: Path, broker: Mosquitto, topic: str, clientid: str, clean: bool) -> Path:
    """One member of the group: its own client id and session, the shared subscription."""
    return write_config(folder, {
        "hub": {"address": broker.address, "clientid": clientid, "cleansession": clean, "interval": "1s"},
        "rules": [{"subscribe": {"topic": f"$share/g/{topic}/in", "qos": 1}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}/out/{{clientid}}", "qos": 1}}],
        "functions": [python_function("echo", "chaos", instance={"max": 2})],
    }, name=f"{clientid}.yml")


@dataclass
class Answers:
    """Which member answered each input id."""

    by_id: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))

    def by(self, who: str) -> set[int]:
        return {n for n, members in self.by_id.items() if who in members}

    @property
    def duplicated(self) -> int:
        return sum(len(members) - 1 for members in self.by_id.values())

    def record(self, payload: bytes, topic: str) -> None:
        self.by_id[orjson.loads(payload)["id"]].append(topic.rsplit("/", 1)[1])

    async def gather(self, probe: Probe, until: Callable[[], bool], *, quiet: float = QUIET) -> None:
        """Record answers until ``until()`` holds (then a moment more, for repeats) or none comes for ``quiet``."""
        while True:
            try:
                message = await probe.next(timeout=LINGER if until() else quiet)
            except TimeoutError:
                return
            self.record(message.payload, message.topic.value)


def inputs(numbers: range, **fields: object) -> list[bytes]:
    return [orjson.dumps({"id": n, **fields}) for n in numbers]


async def start(*configs: Path) -> list[ManagerProcess]:
    managers = [ManagerProcess(config) for config in configs]
    await asyncio.gather(*(asyncio.to_thread(m.wait_ready) for m in managers))
    return managers


@pytest.mark.timeout(60)
async def test_two_members_answer_each_of_2000_qos1_inputs_exactly_once(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    a, b = f"share-a-{suffix}", f"share-b-{suffix}"
    answers = Answers()
    async with Probe(mosquitto.port, [f"{topic}/out/+"]) as probe:
        managers = await start(member(tmp_path, mosquitto, topic, a, False), member(tmp_path, mosquitto, topic, b, False))
        try:
            await publish_all(mosquitto.port, f"{topic}/in", inputs(range(COUNT)))
            await answers.gather(probe, lambda: len(answers.by_id) == COUNT)
        finally:
            codes = [m.stop() for m in managers]
    assert set(answers.by_id) == set(range(COUNT))
    assert answers.duplicated == 0
    assert answers.by(a) and answers.by(b)  # the broker shared the work
    assert codes == [0, 0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("clean", [False, True], ids=["cleansession-false", "cleansession-true"])
async def test_what_mosquitto_does_with_the_inputs_of_a_member_killed_mid_run(
    mosquitto: Mosquitto, topic: str, tmp_path: Path, clean: bool
) -> None:
    suffix = uuid.uuid4().hex[:6]
    a, b = f"share-a-{suffix}", f"share-b-{suffix}"
    configs = member(tmp_path, mosquitto, topic, a, clean), member(tmp_path, mosquitto, topic, b, clean)
    before, after = Answers(), Answers()
    async with Probe(mosquitto.port, [f"{topic}/out/+"]) as probe:
        killed, survivor = await start(*configs)
        try:
            # Slow enough that the killed member still holds most of its share, unacknowledged.
            await publish_all(mosquitto.port, f"{topic}/in", inputs(range(COUNT // 2), do="slow", sleep=0.01))
            while len(before.by(a)) < 100:  # a is busy: it holds unacknowledged inputs now
                message = await probe.next(timeout=20)
                before.record(message.payload, message.topic.value)
            killed.kill()
            await publish_all(mosquitto.port, f"{topic}/in", inputs(range(COUNT // 2, COUNT)))
            await before.gather(probe, lambda: len(before.by_id) == COUNT)
            missing = set(range(COUNT)) - set(before.by_id)
            restarted = ManagerProcess(configs[0])
            await asyncio.to_thread(restarted.wait_ready)
            await after.gather(probe, lambda: set(after.by_id) >= missing)
            codes = [restarted.stop(), survivor.stop()]
        finally:
            killed.kill()
            survivor.kill()
    late = set(range(COUNT // 2, COUNT))
    print(f"\ncleansession {str(clean).lower()}: before the kill-and-restart {len(before.by_id)} answered "
          f"(a {len(before.by(a))}, b {len(before.by(b))}), missing {len(missing)} "
          f"({len(missing & late)} published after the kill), duplicated {before.duplicated}; "
          f"after a restarted: {len(after.by_id)} answered (a {len(after.by(a))}, b {len(after.by(b))}), "
          f"of the missing {len(missing & set(after.by_id))}, repeats of answered ones "
          f"{len(set(after.by_id) & set(before.by_id))}")
    assert codes == [0, 0]
    assert missing and not before.by(a) & late  # a was down: it answered nothing published after the kill
    if clean:
        # Its session ended with it: what it held unacknowledged is lost (neither given to b nor
        # redelivered when it returns), and everything published after the kill went to b.
        assert missing <= set(range(COUNT // 2))
        assert late <= before.by(b)
        assert not set(after.by_id) & missing
    else:
        # Its session stays: what it held stays queued for it, and so does its share of what was
        # published while it was down (b gets none of that); all of it is answered when it returns.
        assert missing & late
        assert set(after.by_id) >= missing and after.by(a) == set(after.by_id)
        assert set(before.by_id) | set(after.by_id) == set(range(COUNT))  # 0 lost
        assert before.duplicated == 0
