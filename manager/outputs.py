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
from typing import TYPE_CHECKING

from edgefn.manager.topics import invalid_topic
from edgefn.wire.function_pb2 import FunctionMessage

if TYPE_CHECKING:
    from edgefn.manager.router import Route, Router

log = logging.getLogger("edgefn.router")


class CallOutputs:
    """The outputs of one input's call (across its retries), and their publishes in flight.

    ``topic`` is the rule's rendered publish topic (an output naming no topic
    goes there); ``qos`` is the input's QoS, which caps every output's.
    ``pending`` holds the publishes not yet settled (empty for most calls: the
    router checks it before awaiting anything).
    """

    __slots__ = ("_router", "_route", "_topic", "_qos", "pending")

    def __init__(self, router: Router, route: Route, topic: str, qos: int) -> None:
        self._router = router
        self._route = route
        self._topic = topic
        self._qos = qos
        self.pending: list[asyncio.Task[bool]] = []

    def __call__(self, frame: FunctionMessage) -> None:
        """One output frame from the runtime: start publishing it now."""
        rule, router = self._route.rule, self._router
        topic = frame.Topic or self._topic
        if frame.Topic and (why := invalid_topic(topic)):
            # The built-in runtimes refuse such a topic in the handler already: a custom one may not.
            self._route.stats.invalid_topics += 1
            log.warning("%s: an output of %s to %r is dropped: %s", router.name, rule.function, topic, why)
            return
        asked = frame.OutputQOS - 1 if frame.OutputQOS else rule.publish.qos
        self._route.stats.outputs += 1
        publish = router.publish_output(topic, frame.Payload, min(self._qos, asked), frame.OutputRetain)
        self.pending.append(asyncio.create_task(publish, name=router.output_task_name))

    async def settle(self) -> bool:
        """Wait for every output's publish; True if the hub accepted them all.

        Called once the call is over: the runner delivers nothing after that.
        """
        tasks, self.pending = self.pending, []
        return all(await asyncio.gather(*tasks))

    def cancel(self) -> None:
        """The call was abandoned (shutdown): stop the publishes still in flight."""
        for task in self.pending:
            task.cancel()
        self.pending = []
