"""The router's own logic, fast: topic matching, QoS 0 shedding, ack after publish (SPEC §6).

A runner here is a small in-test object with the Runner shape (our own
interface), and the hub records what it is asked to do; MQTT and gRPC are
exercised for real in test_routing.py and test_delivery.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from edgefn.manager import router as router_module
from edgefn.manager.config import RuleConfig, TopicConfig
from edgefn.manager.hub import Delivery, HubDisconnected
from edgefn.manager.message import Call
from edgefn.manager.metrics import Metrics
from edgefn.manager.router import Route, Router, topic_matches
from edgefn.manager.schedule import Every
from edgefn.manager.scheduler import scheduled_call
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(("pattern", "topic", "matches"), [
    ("t", "t", True), ("t", "t/x", False), ("t/+", "t/x", True), ("t/+", "t/x/y", False),
    ("t/#", "t", True), ("t/#", "t/x/y", True), ("+/x", "a/x", True), ("#", "a/b", True),
    ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("$share/g/t/+", "t/x", True), ("a/b", "a/c", False),
    ("$queue/t/+", "t/x", True), ("$queue/t/+", "t/x/y", False),
])
def test_topic_filters_match_like_mqtt(pattern: str, topic: str, matches: bool) -> None:
    assert topic_matches(pattern, topic) is matches


class Runner:
    runtime = "python"
    message_max = 1024

    def __init__(self, answers: list[bytes | Fault]) -> None:
        self.answers = answers
        self.waiting = 0
        self.calls: list[Call] = []

    async def call(self, call: Call, outputs: object = None) -> bytes:
        self.calls.append(call)
        answer = self.answers.pop(0)
        if isinstance(answer, Fault):
            raise answer
        return answer

    async def start(self) -> None: ...

    async def stop(self, grace: float) -> None: ...


class Hub:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, bytes, int]] = []
        self.acked: list[int] = []
        self.retained: list[bool] = []
        self.fail = fail

    async def publish(self, topic: str, payload: bytes, qos: int, *, retain: bool = False) -> None:
        if self.fail:
            raise HubDisconnected("gone")
        self.published.append((topic, payload, qos))
        self.retained.append(retain)

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery.mid)


def rule(retry: int = 3, publish: TopicConfig | None = None, error: TopicConfig | None = None,
         subscribe: str = "in/#", subscribe_qos: int = 2) -> RuleConfig:
    return RuleConfig(clientid=None, subscribe=TopicConfig(subscribe, subscribe_qos), function="f",
                      publish=publish or TopicConfig("out", 1), error=error or TopicConfig("err", 0),
                      retry_max=retry)


def delivery(mid: int, qos: int = 1, topic: str = "in/a") -> Delivery:
    return Delivery(topic, b"{}", qos, False, mid, 1, time.time())


async def routed(runner: Runner, hub: Hub, *deliveries: Delivery, retry: int = 3, **rule_fields: object) -> Router:
    stats = Metrics().function("f")
    router = Router([Route(rule(retry, **rule_fields), {"f": runner}, stats)], name="test")  # type: ignore[arg-type]
    router.hub = hub  # type: ignore[assignment]
    for item in deliveries:
        router.on_message(item)
    await router.drain(5)
    return router


async def test_qos0_beyond_the_queue_is_dropped_and_counted_qos1_still_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "QOS0_QUEUE_MAX", 2)
    runner, hub = Runner([b"1"]), Hub()
    runner.waiting = 2  # the function is saturated
    stats = Metrics().function("f")
    router = Router([Route(rule(), {"f": runner}, stats)], name="test")
    router.hub = hub  # type: ignore[assignment]
    router.on_message(delivery(1, qos=0))
    router.on_message(delivery(2, qos=1))
    await router.drain(5)
    assert stats.dropped == 1
    assert [call.id for call in runner.calls] == [2]
    assert hub.acked == [2]


async def test_qos1_is_acked_after_its_result_is_published_with_the_lower_qos() -> None:
    runner, hub = Runner([b"result"]), Hub()
    await routed(runner, hub, delivery(7, qos=1))
    assert hub.published == [("out", b"result", 1)] and hub.acked == [7]


async def test_an_empty_result_publishes_nothing_and_acks() -> None:
    hub = Hub()
    await routed(Runner([b""]), hub, delivery(3))
    assert hub.published == [] and hub.acked == [3]


async def test_a_failed_publish_leaves_the_input_unacked_for_redelivery() -> None:
    hub = Hub(fail=True)
    await routed(Runner([b"result"]), hub, delivery(4))
    assert hub.acked == []


async def test_a_crash_is_retried_up_to_retry_max_then_enveloped_to_the_error_topic() -> None:
    crash = Fault(faults.INSTANCE_CRASHED, "killed by signal 9")
    runner, hub = Runner([crash, crash, crash]), Hub()
    await routed(runner, hub, delivery(5), retry=3)
    assert len(runner.calls) == 3 and len({call.invoke_id for call in runner.calls}) == 1
    ((topic, body, qos),) = hub.published
    assert (topic, qos) == ("err", 0) and b'"attempts":3' in body and b"Runtime.InstanceCrashed" in body
    assert hub.acked == [5]


async def test_a_user_error_is_final_at_once() -> None:
    runner, hub = Runner([Fault("TypeError", "bad"), b"never"]), Hub()
    await routed(runner, hub, delivery(6))
    assert len(runner.calls) == 1 and b'"errorType":"TypeError"' in hub.published[0][1]


async def test_after_close_deliveries_are_left_unacked() -> None:
    runner, hub = Runner([b"x"]), Hub()
    router = Router([Route(rule(), {"f": runner}, Metrics().function("f"))], name="test")
    router.hub = hub  # type: ignore[assignment]
    router.close()
    router.on_message(delivery(8))
    await asyncio.sleep(0)
    assert runner.calls == [] and hub.acked == []


async def test_after_close_a_qos2_delivery_is_still_taken_since_the_broker_will_not_resend_it() -> None:
    runner, hub = Runner([b"x"]), Hub()
    router = Router([Route(rule(), {"f": runner}, Metrics().function("f"))], name="test")
    router.hub = hub  # type: ignore[assignment]
    router.close()
    router.on_message(delivery(12, qos=2))
    await router.drain(5)
    assert hub.published == [("out", b"x", 1)] and hub.acked == [12]


async def test_a_function_reloaded_away_answers_with_an_envelope_and_acks() -> None:
    hub = Hub()
    router = Router([Route(rule(), {}, Metrics().function("f"))], name="test")
    router.hub = hub  # type: ignore[assignment]
    router.on_message(delivery(9))
    await router.drain(5)
    ((topic, body, _),) = hub.published
    assert topic == "err" and b"Runtime.FunctionNotFound" in body and hub.acked == [9]


# -- topic templates, retain, QoS 2 ---------------------------------------------------------

async def test_publish_topic_is_rendered_from_the_input_topic_function_and_clientid() -> None:
    hub = Hub()
    await routed(Runner([b"r"]), hub, delivery(1, topic="/owner/udid/status"), subscribe="/+/+/status",
                 publish=TopicConfig("/{2}/{3}/{function}/{clientid}/{{x}}", 1))
    assert hub.published == [("/owner/udid/f/test/{x}", b"r", 1)] and hub.acked == [1]


async def test_a_missing_level_is_not_published_and_an_invalid_topic_envelope_goes_to_the_error_topic() -> None:
    runner, hub = Runner([b"never"]), Hub()
    router = await routed(runner, hub, delivery(2, topic="in"), publish=TopicConfig("out/{3}", 1),
                          error=TopicConfig("err/{function}", 1))
    ((topic, body, qos),) = hub.published
    assert (topic, qos) == ("err/f", 1) and b'"errorType":"Runtime.InvalidTopic"' in body
    assert b"names level 3" in body and runner.calls == [] and hub.acked == [2]
    assert router.unmatched == 0


@pytest.mark.parametrize("topic", ["in/+/x", "in/#", "in/a\0b"])
async def test_a_rendered_topic_with_a_wildcard_or_nul_is_not_published(topic: str) -> None:
    hub = Hub()
    await routed(Runner([b"never"]), hub, delivery(3, topic=topic), publish=TopicConfig("out/{topic}", 1))
    ((target, body, _),) = hub.published
    assert target == "err" and b"Runtime.InvalidTopic" in body and hub.acked == [3]


async def test_an_empty_rendered_topic_is_not_published() -> None:
    hub = Hub()
    await routed(Runner([b"never"]), hub, delivery(4, topic="/x"), subscribe="+/x", publish=TopicConfig("{1}", 1))
    ((target, body, _),) = hub.published
    assert target == "err" and b"it is empty" in body


async def test_when_the_error_topic_cannot_render_either_the_input_is_counted_and_acked() -> None:
    hub = Hub()
    stats = Metrics().function("f")
    bad = rule(publish=TopicConfig("out/{3}", 1), error=TopicConfig("err/{3}", 1))
    router = Router([Route(bad, {"f": Runner([])}, stats)], name="test")
    router.hub = hub  # type: ignore[assignment]
    router.on_message(delivery(5, topic="in/a"))
    await router.drain(5)
    assert hub.published == [] and hub.acked == [5] and stats.invalid_topics == 1


async def test_retain_flags_follow_publish_retain_and_error_retain() -> None:
    hub = Hub()
    await routed(Runner([b"ok", Fault("TypeError", "bad")]), hub, delivery(6), delivery(7),
                 publish=TopicConfig("out", 1, retain=True), error=TopicConfig("err", 1, retain=False))
    assert sorted(zip([t for t, _, _ in hub.published], hub.retained)) == [("err", False), ("out", True)]


async def test_the_context_hears_that_an_input_came_retained() -> None:
    runner = Runner([b""])
    await routed(runner, Hub(), Delivery("in/a", b"{}", 1, True, 8, 1, time.time()))
    assert runner.calls[0].retain is True


@pytest.mark.parametrize(("given", "configured", "used"), [(2, 2, 2), (2, 1, 1), (1, 2, 1), (0, 2, 0)])
async def test_output_qos_is_the_lower_of_input_and_configured_qos_2_included(
    given: int, configured: int, used: int
) -> None:
    hub = Hub()
    await routed(Runner([b"r"]), hub, delivery(9, qos=given), publish=TopicConfig("out", configured))
    assert hub.published == [("out", b"r", used)]
    assert hub.acked == ([9] if given else [])


async def test_a_delivery_no_rule_wants_is_counted_logged_once_per_topic_and_acked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Hub()
    router = await routed(Runner([]), hub, delivery(10, topic="else/x"), delivery(11, topic="else/x"))
    assert router.unmatched == 2 and hub.acked == [10, 11]
    assert sum("matches no rule" in record.message for record in caplog.records) == 1


async def test_an_input_is_called_at_no_higher_qos_than_its_rules_own_filter_asks_for() -> None:
    # Its connection may subscribe a covering filter at another rule's higher QoS (topics.subscriptions).
    hub, runner = Hub(), Runner([b"r"])
    await routed(runner, hub, delivery(14, qos=1), subscribe_qos=0, publish=TopicConfig("out", 1))
    assert runner.calls[0].qos == 0 and hub.published == [("out", b"r", 0)]
    assert hub.acked == [14]  # the delivery itself is still acknowledged at its own QoS


async def test_what_a_covering_subscription_brings_that_no_rule_wants_is_acked_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Hub()
    stats = Metrics().function("f")
    router = Router([Route(rule(), {"f": Runner([])}, stats)], name="test")  # type: ignore[arg-type]
    router.hub = hub  # type: ignore[assignment]
    router.covers = ("cover/+",)
    router.on_message(delivery(12, topic="cover/x"))
    router.on_message(delivery(13, topic="else/x"))
    await router.drain(5)
    assert router.unmatched == 2 and hub.acked == [12, 13]
    assert [record.message for record in caplog.records if "matches no rule" in record.message] == [
        "clientid test: a message on 'else/x' matches no rule; acknowledged and dropped (logged once per topic)"]


# -- scheduled rules: Router.fire takes the same path from the call on ---------------------

NOMINAL = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def scheduled_rule(retry: int = 3) -> RuleConfig:
    return RuleConfig(clientid=None, subscribe=None, function="f", publish=TopicConfig("out", 1),
                      error=TopicConfig("err", 0), retry_max=retry, schedule=Every(seconds=1), payload=b'{"a":1}')


def router_for(runner: Runner, hub: Hub, rule: RuleConfig) -> tuple[Router, Route]:
    route = Route(rule, {"f": runner}, Metrics().function("f"))
    router = Router([route], name="test")
    router.hub = hub  # type: ignore[assignment]
    return router, route


async def test_a_fire_publishes_its_result_to_the_rules_topic_at_publish_qos() -> None:
    runner, hub = Runner([b"result"]), Hub()
    router, route = router_for(runner, hub, scheduled_rule())
    router.fire(route, scheduled_call(route.rule, NOMINAL))
    await router.drain(5)
    assert hub.published == [("out", b"result", 1)] and hub.acked == []
    (call,) = runner.calls
    assert (call.topic, call.qos, call.payload, call.timestamp) == ("", 1, b'{"a":1}', int(NOMINAL.timestamp()))


async def test_a_crashing_fire_is_retried_then_enveloped_like_a_delivery() -> None:
    crash = Fault(faults.INSTANCE_CRASHED, "killed by signal 9")
    runner, hub = Runner([crash, crash]), Hub()
    router, route = router_for(runner, hub, scheduled_rule(retry=2))
    router.fire(route, scheduled_call(route.rule, NOMINAL))
    await router.drain(5)
    ((topic, body, qos),) = hub.published
    assert (topic, qos) == ("err", 0) and b'"attempts":2' in body and b'"Topic":""' in body


async def test_drain_waits_for_a_fire_in_flight_and_a_closed_router_runs_none() -> None:
    release = asyncio.Event()

    class Slow(Runner):
        async def call(self, call, outputs=None):  # type: ignore[no-untyped-def]
            await release.wait()
            return await super().call(call)

    runner, hub = Slow([b"done"]), Hub()
    router, route = router_for(runner, hub, scheduled_rule())
    router.fire(route, scheduled_call(route.rule, NOMINAL))
    router.close()
    router.fire(route, scheduled_call(route.rule, NOMINAL))  # after close: not run
    draining = asyncio.create_task(router.drain(5), name="test-drain")
    await asyncio.sleep(0.05)
    assert not draining.done()
    release.set()
    assert await draining == 0
    assert hub.published == [("out", b"done", 1)] and len(runner.calls) == 1


async def test_a_scheduled_rule_never_matches_a_delivery() -> None:
    runner, hub = Runner([]), Hub()
    router, _ = router_for(runner, hub, scheduled_rule())
    router.on_message(delivery(1, topic=""))
    router.on_message(delivery(2, topic="out"))
    await router.drain(5)
    assert runner.calls == [] and hub.acked == [1, 2]  # nothing wants them: acked, nothing published


def test_invoke_ids_are_uuid_shaped_and_unique() -> None:
    import re

    from edgefn.manager.message import InvokeIds

    ids = InvokeIds()
    made = [ids.next() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i) for i in made)
    assert InvokeIds().next()[:23] != ids.next()[:23]  # another manager, another prefix
