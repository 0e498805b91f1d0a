"""The function message as the manager sees it, and the error envelope (SPEC §7)."""

from __future__ import annotations

import base64
import itertools
import uuid
from dataclasses import dataclass

import orjson

from edgefn.runtimes.faults import Fault

# An oversize input is echoed in its envelope only this far: the envelope must
# itself fit on the hub, and the head of the payload is enough to recognise it.
ENVELOPE_PAYLOAD_MAX = 1024


@dataclass(slots=True)
class Call:
    """One invocation of a function: Baetyl's FunctionMessage fields.

    ``timestamp`` is unix seconds at receipt (a scheduled call's nominal fire
    time); ``invoke_id`` is kept across retries; ``retain`` tells that the input
    came as a retained message; ``scheduled_time`` is set only on a scheduled
    call (RFC 3339 in the schedule's zone).
    """

    id: int
    qos: int
    topic: str
    payload: bytes
    timestamp: int
    function: str
    invoke_id: str
    retain: bool = False
    scheduled_time: str = ""

    def function_message(self, *, payload_max: int | None = None) -> dict[str, object]:
        """The input as the envelope's ``functionMessage`` (Baetyl's names, base64 payload)."""
        payload = self.payload
        truncated = payload_max is not None and len(payload) > payload_max
        if truncated:
            payload = payload[:ENVELOPE_PAYLOAD_MAX]
        message: dict[str, object] = {
            "ID": self.id,
            "QOS": self.qos,
            "Topic": self.topic,
            "Payload": base64.b64encode(payload).decode(),
            "Timestamp": self.timestamp,
            "FunctionName": self.function,
            "FunctionInvokeID": self.invoke_id,
        }
        if truncated:
            message["PayloadTruncated"] = True
        return message


def envelope(
    call: Call,
    fault: Fault,
    *,
    runtime: str,
    attempts: int,
    payload_max: int | None = None,
) -> bytes:
    """The JSON error envelope published for a failed call (SPEC §7)."""
    return orjson.dumps(envelope_fields(call, fault, runtime=runtime, attempts=attempts, payload_max=payload_max))


def envelope_fields(
    call: Call,
    fault: Fault,
    *,
    runtime: str,
    attempts: int,
    payload_max: int | None = None,
) -> dict[str, object]:
    """The error envelope as a dict, before it is written as JSON."""
    return {
        "errorMessage": fault.message,
        "errorType": fault.error_type,
        "errorStack": fault.stack,
        "functionMessage": call.function_message(payload_max=payload_max),
        "runtime": runtime,
        "attempts": attempts,
    }


class InvokeIds:
    """FunctionInvokeIDs in UUID form, cheap enough for the hot path.

    ``str(uuid.uuid4())`` costs about 3 µs a message; here a random UUID's first
    four groups, fixed per manager, carry a counter as the last group: unique
    within a run, and across runs but for a 2**-64 chance of a repeated prefix.
    """

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:23]  # 8-4-4-4, its version and variant bits included
        self._numbers = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._numbers):012x}"


invoke_ids = InvokeIds()
