"""runtimes/outputs.py: what context.publish accepts, and the frames it queues (fast, in-process)."""

from __future__ import annotations

import asyncio

import pytest

from edgefn.runtimes.outputs import Outputs, check_output
from edgefn.wire.function_pb2 import FunctionMessage


@pytest.mark.parametrize(("topic", "qos", "retain"), [
    (None, None, False), ("a/b", 0, True), ("/lead/slash", 2, False), ("a", 1, False),
])
def test_good_arguments_pass(topic: object, qos: object, retain: object) -> None:
    assert check_output(topic, qos, retain) is None


@pytest.mark.parametrize(("topic", "qos", "retain", "says"), [
    ("", None, False, "cannot be published to"), ("a/+", None, False, "cannot be published to"),
    ("a/#", None, False, "cannot be published to"), ("a\0b", None, False, "cannot be published to"),
    (7, None, False, "topic must be a string"), (None, 3, False, "qos must be"),
    (None, True, False, "qos must be"), (None, "1", False, "qos must be"), (None, None, 1, "retain must be"),
])
def test_bad_arguments_say_what_is_wrong(topic: object, qos: object, retain: object, says: str) -> None:
    assert says in (check_output(topic, qos, retain) or "")


async def test_emit_queues_frames_in_order_from_any_thread_and_refuses_oversize() -> None:
    sent: list[FunctionMessage] = []
    outputs = Outputs(sent.append, 8, asyncio.get_running_loop())
    outputs.emit(3, b"one")
    await asyncio.to_thread(outputs.emit, 3, b"two", "t/x", 2, True)
    await asyncio.sleep(0)
    assert [(f.Sequence, f.Output, f.Payload, f.Topic, f.OutputQOS, f.OutputRetain) for f in sent] == [
        (3, True, b"one", "", 0, False), (3, True, b"two", "t/x", 3, True)]
    with pytest.raises(ValueError, match="above the 8 byte limit"):
        outputs.emit(3, b"123456789")
