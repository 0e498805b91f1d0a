"""Rules whose filters overlap, on one connection: each rule takes an input once, whatever the broker.

A broker may send one copy of a message per matching subscription; the
manager subscribes overlapping filters as one (``topics.subscriptions``) and
routes each input to every rule whose own filter matches it. Real mosquitto,
a real ``edgefn run`` and runtime. (With ``workers``, see test_workers.py.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess, python_function, write_config
from support.mqtt import Probe


@pytest.mark.timeout(60)
async def test_partly_overlapping_filters_share_one_subscription_and_each_rule_takes_its_own(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {
        "hub": {"address": mosquitto.address, "clientid": f"ov-{uuid.uuid4().hex[:6]}"},
        "rules": [{"subscribe": {"topic": f"{topic}/+/c", "qos": 1}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}-out/first", "qos": 1}},
                  {"subscribe": {"topic": f"{topic}/b/+", "qos": 1}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}-out/second", "qos": 1}}],
        "functions": [python_function("echo", "chaos", instance={"max": 1})],
    })
    sent = {"b/c": 1, "x/c": 2, "b/z": 3, "x/y": 4}  # both, first only, second only, neither
    with ManagerProcess(config) as manager:
        await asyncio.to_thread(manager.wait_ready)
        async with Probe(mosquitto.port, [f"{topic}-out/+"]) as probe:
            for level, number in sent.items():
                await probe.publish(f"{topic}/{level}", orjson.dumps({"id": number}))
            answers = Counter()
            for _ in range(4):
                message = await probe.next(timeout=10)
                answers[(message.topic.value.rsplit("/", 1)[1], orjson.loads(message.payload)["id"])] += 1
            with pytest.raises(TimeoutError):
                await probe.next(timeout=0.5)  # no repeat, and nothing for x/y
        assert await asyncio.to_thread(manager.stop) == 0
    assert answers == {("first", 1): 1, ("first", 2): 1, ("second", 1): 1, ("second", 3): 1}
    assert f"overlap: subscribed as one, '{topic}/+/+'" in manager.log
    assert "matches no rule" not in manager.log  # x/y came through the wider filter: expected, dropped quietly
