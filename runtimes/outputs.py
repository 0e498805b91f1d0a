"""A call's intermediate outputs on the Talk stream (``context.publish``, yielded values).

An output travels as a FunctionMessage with ``Output`` set and the call's
``Sequence``, in the same queue as the answers, so every output of a call is
written before its answer and they share batches like answers do. On a unary
``Call`` (Baetyl's contract) there is no stream to carry them: the runtime gets
no :class:`Outputs` and drops what the handler publishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edgefn.runtimes.mailbox import mailbox

from edgefn.wire.function_pb2 import FunctionMessage


class Outputs:
    """Where the outputs of the calls of one Talk stream go.

    ``send`` runs on the event loop and queues a frame ahead of any answer
    queued later; :meth:`emit` may be called from any thread (sync handlers run
    on a worker thread), and keeps the order in which it was called.
    """

    __slots__ = ("limit", "_post", "_send")

    def __init__(self, send: Callable[[FunctionMessage], None], limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.limit = limit
        self._post = mailbox(loop).post  # the path sync handlers' answers take too: one order
        self._send = send

    def emit(self, sequence: int, payload: bytes, topic: str = "", qos: int | None = None,
             retain: bool = False) -> None:
        """Queue one output of the call ``sequence``; raise ``ValueError`` if it cannot be sent."""
        if len(payload) > self.limit:
            raise ValueError(f"the output is {len(payload)} bytes, above the {self.limit} byte limit")
        frame = FunctionMessage(Sequence=sequence, Output=True, Payload=payload, Topic=topic,
                                OutputQOS=0 if qos is None else qos + 1, OutputRetain=retain)
        # Through the loop's mailbox even from the loop's own thread: a handler may
        # publish from a thread of its own, and one path keeps one order.
        self._post(self._send, frame)


def check_output(topic: object, qos: object, retain: object) -> str | None:
    """What is wrong with an output's topic, qos or retain as a handler gave them, or None."""
    if topic is not None:
        if not isinstance(topic, str):
            return f"topic must be a string or None, got {type(topic).__name__}"
        if not topic or "+" in topic or "#" in topic or "\0" in topic:
            return f"topic {topic!r} cannot be published to (empty, or holds '+', '#' or NUL)"
    if qos is not None and (type(qos) is not int or qos not in (0, 1, 2)):
        return f"qos must be 0, 1, 2 or None, got {qos!r}"
    if not isinstance(retain, bool):
        return f"retain must be a bool, got {type(retain).__name__}"
    return None
