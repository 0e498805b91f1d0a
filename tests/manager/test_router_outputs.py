"""The router with outputs before the result: order, topics, QoS, ack, failures (fast, in-process)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from edgefn.manager.config import RuleConfig, TopicConfig
from edgefn.manager.hub import Delivery, HubDisconnected
from edgefn.manager.message import Call
from edgefn.manager.metrics import FunctionStats, Metrics
from edgefn.manager.router import Route, Router
from edgefn.manager.schedule import Every
from edgefn.manager.scheduler import scheduled_call
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from edgefn.wire.function_pb2 import FunctionMessage

pytestmark = pytest.mark.timeout(10)


def output(payload: bytes, topic: str = "", qos: int | None = None, retain: bool = False) -> FunctionMessage:
    return FunctionMessage(Output=True, Payload=payload, Topic=topic, OutputQOS=0 if qos is None else qos + 1,
                           OutputRetain=retain)


class Runner:
    """Produces each script's outputs through the sink, then its answer (bytes) or raises it (Fault)."""

    runtime = "python"
    message_max = 1024
    waiting = 0

    def __init__(self, *scripts: tuple[list[FunctionMessage], bytes | Fault]) -> None:
        self.scripts = list(scripts)

    async def call(self, call: Call, outputs=None) -> bytes:  # type: ignore[no-untyped-def]
        produced, answer = self.scripts.pop(0)
        for frame in produced:
            outputs(frame)
            await asyncio.sleep(0)
        if isinstance(answer, Fault):
            raise answer
        return answer

    async def start(self) -> None: ...

    async def stop(self, grace: float) -> None: ...


class Hub:
    """Records publishes in the order they started; ``fail_on`` payloads are refused."""

    def __init__(self, fail_on: bytes | None = None) -> None:
        self.started: list[tuple[str, bytes, int, bool]] = []
        self.acked: list[int] = []
        self.fail_on = fail_on
        self.release = asyncio.Event()
        self.release.set()

    async def publish(self, topic: str, payload: bytes, qos: int, *, retain: bool = False) -> None:
        self.started.append((topic, payload, qos, retain))
        await self.release.wait()
        if payload == self.fail_on:
            raise HubDisconnected("gone")

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery.mid)


def rule(publish_qos: int = 1, retry: int = 3) -> RuleConfig:
    return RuleConfig(clientid=None, subscribe=TopicConfig("in/#", 2), function="f",
                      publish=TopicConfig("out/{2}", publish_qos), error=TopicConfig("err", 1), retry_max=retry)


def routed(runner: Runner, hub: Hub, **rule_fields: object) -> tuple[Router, FunctionStats]:
    stats = Metrics().function("f")
    router = Router([Route(rule(**rule_fields), {"f": runner}, stats)], name="test")  # type: ignore[arg-type]
    router.hub = hub  # type: ignore[assignment]
    return router, stats


def delivery(mid: int = 1, qos: int = 1) -> Delivery:
    return Delivery("in/dev", b"{}", qos, False, mid, 1, time.time())


async def test_outputs_go_out_in_order_before_the_result_then_the_input_is_acked() -> None:
    runner = Runner(([output(b"1"), output(b"2"), output(b"3")], b"result"))
    hub = Hub()
    router, stats = routed(runner, hub)
    router.on_message(delivery(7))
    await router.drain(5)
    assert [payload for _, payload, _, _ in hub.started] == [b"1", b"2", b"3", b"result"]
    assert {topic for topic, _, _, _ in hub.started} == {"out/dev"}  # the rule's rendered topic
    assert hub.acked == [7] and stats.outputs == 3


async def test_each_output_starts_publishing_when_it_arrives_not_at_the_end() -> None:
    gate = asyncio.Event()

    class Waits(Runner):
        async def call(self, call: Call, outputs=None) -> bytes:  # type: ignore[no-untyped-def]
            outputs(output(b"early"))
            await gate.wait()
            return b"late"

    hub = Hub()
    router, _ = routed(Waits(), hub)
    router.on_message(delivery())
    for _ in range(5):
        await asyncio.sleep(0)
    assert [payload for _, payload, _, _ in hub.started] == [b"early"]  # published while the call runs
    gate.set()
    await router.drain(5)
    assert [payload for _, payload, _, _ in hub.started] == [b"early", b"late"]


async def test_a_named_topic_is_used_as_given_and_qos_is_capped_by_the_input() -> None:
    runner = Runner(([output(b"a", topic="x/y", qos=2, retain=True), output(b"b", qos=0), output(b"c")], b""))
    hub = Hub()
    router, _ = routed(runner, hub, publish_qos=2)
    router.on_message(delivery(qos=1))
    await router.drain(5)
    assert hub.started == [("x/y", b"a", 1, True), ("out/dev", b"b", 0, False), ("out/dev", b"c", 1, False)]


async def test_the_input_is_acked_only_after_every_output_was_accepted() -> None:
    runner = Runner(([output(b"1")], b"result"))
    hub = Hub()
    hub.release.clear()
    router, _ = routed(runner, hub)
    router.on_message(delivery(3))
    for _ in range(10):
        await asyncio.sleep(0)
    assert hub.acked == []
    hub.release.set()
    await router.drain(5)
    assert hub.acked == [3]


async def test_a_refused_output_leaves_the_input_unacknowledged() -> None:
    runner = Runner(([output(b"1"), output(b"2")], b"result"))
    hub = Hub(fail_on=b"2")
    router, _ = routed(runner, hub)
    router.on_message(delivery(4))
    await router.drain(5)
    assert [payload for _, payload, _, _ in hub.started] == [b"1", b"2", b"result"]
    assert hub.acked == []


async def test_after_a_failure_the_outputs_stand_and_the_envelope_follows() -> None:
    runner = Runner(([output(b"1"), output(b"2")], Fault(faults.TIMEOUT, "too slow")))
    hub = Hub()
    router, _ = routed(runner, hub)
    router.on_message(delivery(5))
    await router.drain(5)
    (_, one, _, _), (_, two, _, _), (topic, body, qos, _) = hub.started
    assert (one, two, topic, qos) == (b"1", b"2", "err", 1)
    assert b'"errorType":"Runtime.Timeout"' in body
    assert hub.acked == [5]


async def test_an_invalid_named_topic_is_dropped_and_counted_and_the_rest_goes_on() -> None:
    runner = Runner(([output(b"bad", topic="a/+/b"), output(b"good")], b""))
    hub = Hub()
    router, stats = routed(runner, hub)
    router.on_message(delivery(6))
    await router.drain(5)
    assert [payload for _, payload, _, _ in hub.started] == [b"good"]
    assert stats.invalid_topics == 1 and hub.acked == [6]


async def test_a_retried_call_may_repeat_outputs_and_all_of_them_are_published() -> None:
    crashed = Fault(faults.INSTANCE_CRASHED, "gone")
    runner = Runner(([output(b"1")], crashed), ([output(b"1"), output(b"2")], b"done"))
    hub = Hub()
    router, _ = routed(runner, hub)
    router.on_message(delivery(8))
    await router.drain(5)
    assert [payload for _, payload, _, _ in hub.started] == [b"1", b"1", b"2", b"done"]


async def test_a_scheduled_rule_publishes_its_outputs_too() -> None:
    runner = Runner(([output(b"tick")], b"tock"))
    hub = Hub()
    scheduled = RuleConfig(clientid=None, subscribe=None, function="f", publish=TopicConfig("sched/out", 1),
                           error=None, retry_max=1, schedule=Every(seconds=60), payload=b"{}")
    router = Router([], name="test")
    router.hub = hub  # type: ignore[assignment]
    route = Route(scheduled, {"f": runner}, Metrics().function("f"))  # type: ignore[dict-item]
    router.fire(route, scheduled_call(scheduled, datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)))
    await router.drain(5)
    assert [(topic, payload) for topic, payload, _, _ in hub.started] == [("sched/out", b"tick"), ("sched/out", b"tock")]
