"""context.publish on the Node runtime: Output frames on Talk, in order, ahead of the answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgefn.wire.function_pb2 import FunctionMessage


def talk_frames(instance: Any, payload: bytes, *, batch: bool = False) -> list[FunctionMessage]:
    """One call on a Talk stream: every frame it produced (Batch unpacked), in order."""
    request = FunctionMessage(Sequence=5, Payload=payload, Topic="in/t")
    sent = FunctionMessage(Batch=[request]) if batch else request
    frames: list[FunctionMessage] = []
    for frame in instance.stub.Talk(iter([sent]), timeout=10):
        frames.extend(frame.Batch or (frame,))
    assert all(frame.Sequence == 5 for frame in frames)
    return frames


@pytest.mark.parametrize("batch", [False, True])
def test_sync_publish_sends_outputs_in_order_before_the_answer(node_runtime: Any, batch: bool) -> None:
    instance = node_runtime.start("js_outputs", "index.publishes")
    *produced, answer = talk_frames(instance, b'{"n": 3}', batch=batch)
    assert all(frame.Output for frame in produced) and not answer.Output
    assert [json.loads(frame.Payload) for frame in produced[:3]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    raw = produced[3]
    assert (raw.Payload, raw.Topic, raw.OutputQOS, raw.OutputRetain) == (b"raw", "elsewhere/raw", 1, True)
    assert len(produced) == 4  # publish(null) sent nothing
    # publish is on the prototype: the context's keys and JSON are Baetyl's.
    assert json.loads(answer.Payload) == {"done": "in/t", "keys": 7, "json": "in/t"}


def test_async_publish_sends_outputs_before_the_answer(node_runtime: Any) -> None:
    instance = node_runtime.start("js_outputs", "index.publishesAsync")
    frames = talk_frames(instance, b'{"n": 4}')
    assert [json.loads(frame.Payload) for frame in frames[:-1]] == [{"i": n} for n in range(4)]
    assert json.loads(frames[-1].Payload) == {"done": True}


def test_callback_style_publishes_until_it_answers_and_nothing_after(node_runtime: Any) -> None:
    instance = node_runtime.start("js_outputs", "index.callback")
    frames = talk_frames(instance, b"{}")
    assert [(frame.Output, frame.Payload) for frame in frames] == [
        (True, b'"first"'), (True, b'"second"'), (False, b'"answered"')]


def test_a_wildcard_topic_is_refused_in_the_handler(node_runtime: Any) -> None:
    instance = node_runtime.start("js_outputs", "index.badTopic")
    (answer,) = talk_frames(instance, b"{}")
    assert json.loads(answer.Payload)["refused"].startswith("TypeError: context.publish: topic \"a/#\"")


def test_unary_call_returns_the_result_only(node_runtime: Any) -> None:
    instance = node_runtime.start("js_outputs", "index.publishes")
    assert instance.call_json({"n": 3}, Topic="in/t")["done"] == "in/t"
