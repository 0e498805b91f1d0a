"""Routing: a delivery from the hub → the rules it matches → a call → publish → ack (SPEC §6).

A scheduled rule's fire (:meth:`Router.fire`) joins the same path at the call:
same runner lookup, retries, results and envelopes, on the rule's connection.

One Router serves one hub connection (one clientid) and the rules on it. QoS 1
inputs are acknowledged only after every output they caused was accepted by the
hub (or when there was nothing to publish), so a crash anywhere loses nothing:
the broker redelivers what was never acknowledged. A call's intermediate outputs
(``outputs.py``) go out as they arrive, before its result, and count among
those outputs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field

from edgefn.manager.config import RuleConfig, TopicConfig
from edgefn.manager.hub import Delivery, Hub, HubError
from edgefn.manager.message import Call, envelope, invoke_ids
from edgefn.manager.metrics import FunctionStats, RuleStats
from edgefn.manager.outputs import CallOutputs
from edgefn.manager.runners import Gone, Runner
from edgefn.manager.topics import invalid_topic, topic_matches
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from edgefn.wire.limits import MQTT_MESSAGE_MAX

log = logging.getLogger("edgefn.router")
next_invoke_id = invoke_ids.next

# QoS 0 inputs beyond this many waiting calls of one function are dropped and
# counted (SPEC §6): memory stays bounded when a function cannot keep up.
QOS0_QUEUE_MAX = 1000
# MQTT's largest payload: the default of hub.message.length.max.
# Matching results are cached per concrete topic; the cache is bounded.
MATCH_CACHE_MAX = 4096
# Topics that matched no rule are logged once each, up to this many.
UNMATCHED_LOG_MAX = 100


@dataclass(frozen=True)
class Route:
    """A rule and the live table of runners its function is looked up in.

    The runner is looked up per call, not bound once: a hot reload swaps a
    function's runner, and retries must go to the new one.
    """

    rule: RuleConfig
    runners: Mapping[str, Runner]
    stats: FunctionStats
    counts: RuleStats = field(default_factory=lambda: RuleStats(-1))  # the rule's own counters

    @property
    def runner(self) -> Runner:
        """The function's runner now; a function reloaded away is a Gone stand-in."""
        return self.runners.get(self.rule.function) or Gone(self.rule.function)

    @property
    def qos(self) -> int:
        """The QoS of the rule's own filter: an input that came through a covering subscription at a
        higher one (topics.subscriptions) is called as if its own subscription had brought it."""
        return self.rule.subscribe.qos if self.rule.subscribe is not None else 2


class Router:
    """Turns one connection's deliveries into calls and publishes the outcomes."""

    def __init__(self, routes: Sequence[Route], name: str, message_max: int = MQTT_MESSAGE_MAX) -> None:
        self.name = name
        self.message_max = message_max  # hub.message.length.max: larger results are never published
        self._task_name = f"{name}:deliver"  # formatted once: on_message is the hot path
        self.output_task_name = f"{name}:output"  # read by CallOutputs
        self.hub: Hub | None = None
        self._routes = list(routes)
        self._matches: dict[str, list[Route]] = {}
        self.unmatched = 0  # deliveries no rule wanted (acknowledged, logged once per topic)
        self.publish_failures = 0  # publishes the hub did not take (the input stays unacknowledged)
        self._unmatched_topics: set[str] = set()
        # Subscriptions broader than any rule's filter (topics.subscriptions): what they bring that no
        # rule matches is expected, so it is dropped without a warning.
        self.covers: tuple[str, ...] = ()
        self._tasks: set[asyncio.Task[object]] = set()
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def replace_routes(self, routes: Sequence[Route]) -> None:
        """Swap the rule set atomically (hot reload): new deliveries use the new routes."""
        self._routes = list(routes)
        self._matches.clear()

    # -- receiving -------------------------------------------------------------

    def on_message(self, delivery: Delivery) -> None:
        """The hub's callback, on the event loop, for every delivery (hot path)."""
        if self._closed and delivery.qos != 2:
            return  # not acked: the broker redelivers it to our next session
        # A QoS 2 input is taken even while closing: the broker will never send it again.
        routes = self._matches.get(delivery.topic)
        if routes is None:
            routes = self._match(delivery.topic)
        if not routes:
            self._unmatched(delivery)
            return
        if delivery.qos == 0 and routes[0].runner.waiting >= QOS0_QUEUE_MAX:
            routes[0].stats.dropped += 1
            return
        task = asyncio.create_task(self._deliver(delivery, routes), name=self._task_name)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)

    def fire(self, route: Route, call: Call) -> None:
        """Run a scheduled rule's ``call`` as its own task, drained on shutdown like a delivery."""
        if self._closed:
            log.warning("rules[%d]: %s: a scheduled call came while stopping; not run",
                        route.rule.index, route.rule.function)
            return
        task = asyncio.create_task(self._call(route, call), name=f"{self.name}:fire")
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)

    def _match(self, topic: str) -> list[Route]:
        routes = [route for route in self._routes
                  if route.rule.subscribe is not None and topic_matches(route.rule.subscribe.topic, topic)]
        if len(self._matches) >= MATCH_CACHE_MAX:
            self._matches.clear()
        self._matches[topic] = routes
        return routes

    def _unmatched(self, delivery: Delivery) -> None:
        """No rule wants it (a stale subscription, a broker's odd match, a covering subscription): ack it,
        and say so unless a covering subscription asked for it."""
        self.unmatched += 1
        topic = delivery.topic
        expected = any(topic_matches(cover, topic) for cover in self.covers)
        if not expected and topic not in self._unmatched_topics and len(self._unmatched_topics) < UNMATCHED_LOG_MAX:
            self._unmatched_topics.add(topic)
            log.warning("clientid %s: a message on %r matches no rule; acknowledged and dropped "
                        "(logged once per topic)", self.name, topic, extra={"clientid": self.name, "topic": topic})
        self._ack(delivery)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("clientid %s: delivery failed", self.name, exc_info=task.exception())

    # -- one delivery ------------------------------------------------------------

    async def _deliver(self, delivery: Delivery, routes: list[Route]) -> None:
        if len(routes) == 1:
            published = await self._route(delivery, routes[0])
        else:
            outcomes = await asyncio.gather(*(self._route(delivery, route) for route in routes))
            published = all(outcomes)
        if published:
            self._ack(delivery)

    async def _route(self, delivery: Delivery, route: Route) -> bool:
        """Call the rule's function and publish the outcome; False if the hub did not take it."""
        rule = route.rule
        call = Call(
            id=delivery.mid,
            qos=min(delivery.qos, route.qos),
            topic=delivery.topic,
            payload=delivery.payload,
            timestamp=int(delivery.received),
            function=rule.function,
            invoke_id=next_invoke_id(),
            retain=delivery.retain,
        )
        return await self._call(route, call)

    async def _call(self, route: Route, call: Call) -> bool:
        """Run ``call`` (retrying what may be retried) and publish its outcome with QoS ≤ ``call.qos``."""
        rule = route.rule
        route.counts.inputs += 1
        # Rendered once per input, before the call: an output with nowhere to go is not worth a call.
        topic, problem = self._render(rule.publish, "publish.topic", call.topic, rule)
        if topic is None:
            return await self._publish_fault(route, route.runner, call, Fault(faults.INVALID_TOPIC, problem or ""), 0)
        # One small object per call; a call without outputs pays nothing else (no task, no await).
        outputs = CallOutputs(self, route, topic, call.qos)
        attempts = 0
        try:
            while True:
                attempts += 1
                runner = route.runner
                try:
                    result = await runner.call(call, outputs)
                except Fault as fault:
                    if fault.retriable and attempts < rule.retry_max and not self._closed:
                        continue
                    # The outputs already produced stand; the envelope follows them.
                    accepted = not outputs.pending or await outputs.settle()
                    return await self._publish_fault(route, runner, call, fault, attempts) and accepted
                accepted = not outputs.pending or await outputs.settle()
                if not result:
                    return accepted
                if len(result) > self.message_max:  # the hub would drop it silently (MQTT 3.1.1 cannot say so)
                    too_large = Fault(faults.MESSAGE_TOO_LARGE, f"result of {len(result)} bytes exceeds "
                                      f"hub.message.length.max ({self.message_max} bytes)")
                    return await self._publish_fault(route, runner, call, too_large, attempts) and accepted
                published = await self._publish(topic, result, min(call.qos, rule.publish.qos), rule.publish.retain)
                route.counts.outputs += published
                return published and accepted
        finally:
            if outputs.pending:  # cancelled (shutdown) while its outputs were going out
                outputs.cancel()

    def _render(self, target: TopicConfig, key: str, input_topic: str, rule: RuleConfig) -> tuple[str | None, str]:
        """``target``'s topic for this input, or None and why it cannot be published to."""
        template = target.template
        if template is None:
            return target.topic, ""
        if template.literal is not None:
            return template.literal, ""  # checked at load: the fast path
        levels = input_topic.split("/") if template.max_level else None
        topic = template.render(levels, input_topic, rule.function, self.name)
        if topic is None:
            count = len(levels or ())
            return None, (f"rules[{rule.index}].{key} {template.text!r} names level {template.max_level}, "
                          f"but the input topic {input_topic!r} has {count} level{'s' if count != 1 else ''}")
        if why := invalid_topic(topic):
            return None, (f"rules[{rule.index}].{key} {template.text!r} gives {topic!r} for the input topic "
                          f"{input_topic!r}, which cannot be published to: {why}")
        return topic, ""

    async def _publish_fault(
        self, route: Route, runner: Runner, call: Call, fault: Fault, attempts: int
    ) -> bool:
        rule = route.rule
        target = rule.error or rule.publish
        key = "error.topic" if rule.error else "publish.topic"
        route.counts.envelopes += 1
        log.warning(
            "rules[%d]: %s failed on %s: %s: %s (clientid %s)", rule.index, rule.function,
            call.topic or "a schedule", fault.error_type, fault.message, self.name,
            extra={"rule": rule.index, "function": rule.function, "topic": call.topic, "clientid": self.name,
                   "errorType": fault.error_type},
        )
        topic, problem = self._render(target, key, call.topic, rule)
        if topic is None:
            # Nowhere to say it either: an unacknowledged input would only come back to the same end.
            route.stats.invalid_topics += 1
            log.error("rules[%d]: the envelope of %s is dropped and its input acknowledged: %s",
                      rule.index, rule.function, problem,
                      extra={"rule": rule.index, "function": rule.function, "clientid": self.name})
            return True
        echo_max = min(runner.message_max, self.message_max // 2)  # base64 grows it by 4/3
        body = envelope(call, fault, runtime=runner.runtime, attempts=attempts, payload_max=echo_max)
        return await self._publish(topic, body, min(call.qos, target.qos), target.retain)

    def publish_output(self, topic: str, payload: bytes, qos: int, retain: bool) -> Coroutine[object, object, bool]:
        """Publish one of a call's outputs (see outputs.py); True once the hub accepted it."""
        return self._publish(topic, payload, qos, retain)

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        assert self.hub is not None
        try:
            await self.hub.publish(topic, payload, qos, retain=retain)
        except HubError as exc:
            # Not acknowledged: the broker redelivers the input on our next connection.
            self.publish_failures += 1
            log.warning("clientid %s: publish to %s failed (%s); the input stays unacknowledged",
                        self.name, topic, exc, extra={"clientid": self.name, "topic": topic})
            return False
        return True

    def _ack(self, delivery: Delivery) -> None:
        if delivery.qos and self.hub is not None:
            self.hub.ack(delivery)

    # -- shutdown ----------------------------------------------------------------

    def close(self) -> None:
        """Stop taking QoS 0 and 1 deliveries (they stay unacknowledged); QoS 2 ones are still taken."""
        self._closed = True

    async def drain(self, timeout: float) -> int:
        """Wait for deliveries in flight (up to ``timeout``); cancel the rest and return their count."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return 0
        except TimeoutError:
            left = list(self._tasks)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            return len(left)
