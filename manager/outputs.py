"""A call's intermediate outputs, published as they arrive (``context.publish``, yields).

The runner hands each output frame to :class:`CallOutputs` on the event loop,
in the order the function produced them. Each publish starts at once, in a task
of its own created in arrival order (tasks start in creation order, so the hub
sends them in that order too); the router awaits them all with
:meth:`CallOutputs.settle` before it publishes the call's result or envelope,
and acknowledges the input only if every one was accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

from edgefn.manager.config import RuleConfig
from edgefn.manager.metrics import FunctionStats
from edgefn.manager.topics import invalid_topic
from edgefn.wire.function_pb2 import FunctionMessage

log = logging.getLogger("edgefn.router")

# Publishes one message; True once the hub accepted it.
Publish = Callable[[str, bytes, int, bool], Coroutine[object, object, bool]]


class CallOutputs:
    """The outputs of one input's call (across its retries), and their publishes in flight.

    ``topic`` is the rule's rendered publish topic (an output naming no topic
    goes there); ``qos`` is the input's QoS, which caps every output's; ``name``
    names the publish tasks and the log lines.
    """

    __slots__ = ("_publish", "_rule", "_stats", "_topic", "_qos", "_name", "_tasks")

    def __init__(self, publish: Publish, rule: RuleConfig, stats: FunctionStats, topic: str, qos: int,
                 name: str) -> None:
        self._publish = publish
        self._rule = rule
        self._stats = stats
        self._topic = topic
        self._qos = qos
        self._name = name
        self._tasks: list[asyncio.Task[bool]] = []

    def __call__(self, frame: FunctionMessage) -> None:
        """One output frame from the runtime: start publishing it now."""
        topic = frame.Topic or self._topic
        if frame.Topic and (why := invalid_topic(topic)):
            # The built-in runtimes refuse such a topic in the handler already: a custom one may not.
            self._stats.invalid_topics += 1
            log.warning("%s: an output of %s to %r is dropped: %s", self._name, self._rule.function, topic, why)
            return
        asked = frame.OutputQOS - 1 if frame.OutputQOS else self._rule.publish.qos
        qos = min(self._qos, asked)
        self._stats.outputs += 1
        publish = self._publish(topic, frame.Payload, qos, frame.OutputRetain)
        self._tasks.append(asyncio.create_task(publish, name=self._name))

    async def settle(self) -> bool:
        """Wait for every output's publish; True if the hub accepted them all.

        Called once the call is over: the runner delivers nothing after that.
        """
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return True
        return all(await asyncio.gather(*tasks))

    def cancel(self) -> None:
        """The call was abandoned (shutdown): stop the publishes still in flight."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
