"""Routing: a delivery from the hub → the rules it matches → a call → publish → ack (SPEC §6).

One Router serves one hub connection (one clientid) and the rules on it. QoS 1
inputs are acknowledged only after every output they caused was accepted by the
hub (or when there was nothing to publish), so a crash anywhere loses nothing:
the broker redelivers what was never acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgefn.manager.config import RuleConfig
from edgefn.manager.hub import Delivery, Hub, HubError
from edgefn.manager.message import Call, envelope
from edgefn.manager.metrics import FunctionStats
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault

log = logging.getLogger("edgefn.router")

# QoS 0 inputs beyond this many waiting calls of one function are dropped and
# counted (SPEC §6): memory stays bounded when a function cannot keep up.
QOS0_QUEUE_MAX = 1000
# MQTT's largest payload: the default of hub.message.length.max.
MQTT_MESSAGE_MAX = 268_435_455
# Matching results are cached per concrete topic; the cache is bounded.
MATCH_CACHE_MAX = 4096


class Runner(Protocol):
    """What a rule calls: a pool of instances, or the in-process SQL engine."""

    runtime: str
    message_max: int
    waiting: int

    async def call(self, call: Call) -> bytes: ...

    async def start(self) -> None: ...

    async def stop(self, grace: float) -> None: ...


@dataclass(frozen=True)
class Route:
    """A rule and the live table of runners its function is looked up in.

    The runner is looked up per call, not bound once: a hot reload swaps a
    function's runner, and retries must go to the new one.
    """

    rule: RuleConfig
    runners: Mapping[str, Runner]
    stats: FunctionStats

    @property
    def runner(self) -> Runner:
        """The function's runner now; a function reloaded away is a Gone stand-in."""
        return self.runners.get(self.rule.function) or Gone(self.rule.function)


class Gone:
    """The runner of a function that no longer exists: every call fails, nothing waits."""

    runtime = "unknown"
    message_max = None
    waiting = 0

    def __init__(self, function: str) -> None:
        self.function = function

    async def call(self, call: Call) -> bytes:
        raise Fault(faults.FUNCTION_NOT_FOUND, f"function {self.function!r} no longer exists (the config changed)")

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self, grace: float) -> None:
        """Nothing to stop."""


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest; ``$share/g/`` ignored)."""
    if pattern.startswith("$share/"):
        pattern = pattern.split("/", 2)[2] if pattern.count("/") >= 2 else ""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False  # wildcards never match $SYS-style topics
    want = pattern.split("/")
    have = topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have) or (level != "+" and level != have[index]):
            return False
    return len(want) == len(have)


class Router:
    """Turns one connection's deliveries into calls and publishes the outcomes."""

    def __init__(self, routes: Sequence[Route], name: str, message_max: int = MQTT_MESSAGE_MAX) -> None:
        self.name = name
        self.message_max = message_max  # hub.message.length.max: larger results are never published
        self._task_name = f"{name}:deliver"  # formatted once: on_message is the hot path
        self.hub: Hub | None = None
        self._routes = list(routes)
        self._matches: dict[str, list[Route]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
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
        if self._closed:
            return  # not acked: the broker redelivers it to our next session
        routes = self._matches.get(delivery.topic)
        if routes is None:
            routes = self._match(delivery.topic)
        if not routes:
            self._ack(delivery)  # no rule wants it (a stale subscription): nothing to publish
            return
        if delivery.qos == 0 and routes[0].runner.waiting >= QOS0_QUEUE_MAX:
            routes[0].stats.dropped += 1
            return
        task = asyncio.create_task(self._deliver(delivery, routes), name=self._task_name)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)

    def _match(self, topic: str) -> list[Route]:
        routes = [route for route in self._routes if topic_matches(route.rule.subscribe.topic, topic)]
        if len(self._matches) >= MATCH_CACHE_MAX:
            self._matches.clear()
        self._matches[topic] = routes
        return routes

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: delivery failed", self.name, exc_info=task.exception())

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
            qos=delivery.qos,
            topic=delivery.topic,
            payload=delivery.payload,
            timestamp=int(delivery.received),
            function=rule.function,
            invoke_id=str(uuid.uuid4()),
        )
        attempts = 0
        while True:
            attempts += 1
            runner = route.runner
            try:
                result = await runner.call(call)
            except Fault as fault:
                if fault.retriable and attempts < rule.retry_max and not self._closed:
                    continue
                return await self._publish_fault(delivery, route, runner, call, fault, attempts)
            if not result:
                return True
            if len(result) > self.message_max:  # the hub would drop it silently (MQTT 3.1.1 cannot say so)
                fault = Fault(faults.MESSAGE_TOO_LARGE, f"result of {len(result)} bytes exceeds "
                              f"hub.message.length.max ({self.message_max} bytes)")
                return await self._publish_fault(delivery, route, runner, call, fault, attempts)
            return await self._publish(rule.publish.topic, result, min(delivery.qos, rule.publish.qos))

    async def _publish_fault(
        self, delivery: Delivery, route: Route, runner: Runner | Gone, call: Call, fault: Fault, attempts: int
    ) -> bool:
        rule = route.rule
        target = rule.error or rule.publish
        log.warning(
            "%s: %s failed on %s: %s: %s", self.name, rule.function, delivery.topic, fault.error_type, fault.message
        )
        echo_max = min(runner.message_max or MQTT_MESSAGE_MAX, self.message_max // 2)  # base64 grows it by 4/3
        body = envelope(call, fault, runtime=runner.runtime, attempts=attempts, payload_max=echo_max)
        return await self._publish(target.topic, body, min(delivery.qos, target.qos))

    async def _publish(self, topic: str, payload: bytes, qos: int) -> bool:
        assert self.hub is not None
        try:
            await self.hub.publish(topic, payload, qos)
        except HubError as exc:
            # Not acknowledged: the broker redelivers the input on our next connection.
            log.warning("%s: publish to %s failed (%s); the input stays unacknowledged", self.name, topic, exc)
            return False
        return True

    def _ack(self, delivery: Delivery) -> None:
        if delivery.qos and self.hub is not None:
            self.hub.ack(delivery)

    # -- shutdown ----------------------------------------------------------------

    def close(self) -> None:
        """Stop taking deliveries; those not yet taken stay unacknowledged."""
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
