"""Outputs before the result (context.publish, yields): Output frames on Talk, ahead of the answer."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import orjson
import pytest

from edgefn.wire.function_pb2 import FunctionMessage


async def frames_until_answer(call: grpc.aio.StreamStreamCall, sequence: int) -> list[FunctionMessage]:
    """Every frame of call ``sequence`` (Batch frames unpacked), up to and including its answer."""
    got: list[FunctionMessage] = []
    while True:
        frame = await asyncio.wait_for(call.read(), 15)
        assert frame is not grpc.aio.EOF
        for item in frame.Batch or (frame,):
            assert item.Sequence == sequence
            got.append(item)
            if not item.Output:
                return got


async def talk_once(runtime, payload: bytes, *, batch: bool = False) -> list[FunctionMessage]:
    call = runtime.stub.Talk()
    request = FunctionMessage(Sequence=7, Payload=payload, Topic="in/t")
    await call.write(FunctionMessage(Batch=[request]) if batch else request)
    frames = await frames_until_answer(call, 7)
    await call.done_writing()
    return frames


def outputs(frames: list[FunctionMessage]) -> list[object]:
    return [orjson.loads(frame.Payload) for frame in frames if frame.Output and not frame.Topic]


@pytest.mark.parametrize("batch", [False, True])
async def test_sync_publish_sends_outputs_in_order_before_the_answer(spawn, batch: bool) -> None:
    runtime = await spawn("outputs", "index.publishes")
    frames = await talk_once(runtime, b'{"n": 3}', batch=batch)
    *produced, answer = frames
    assert all(frame.Output for frame in produced) and not answer.Output
    assert outputs(frames) == [{"i": 0}, {"i": 1}, {"i": 2}]  # publish(None) sent nothing
    raw = produced[-1]
    assert (raw.Payload, raw.Topic, raw.OutputQOS, raw.OutputRetain) == (b"raw", "elsewhere/raw", 1, True)
    assert all(frame.OutputQOS == 0 for frame in produced[:-1])  # 0: the rule's QoS
    assert orjson.loads(answer.Payload) == {"done": "in/t", "dict": True}


async def test_async_publish_sends_outputs_before_the_answer(spawn) -> None:
    runtime = await spawn("outputs", "index.publishes_async")
    frames = await talk_once(runtime, b'{"n": 4}')
    assert outputs(frames) == [{"i": n} for n in range(4)]
    assert orjson.loads(frames[-1].Payload) == {"done": True}


@pytest.mark.parametrize("handler", ["generates", "generates_async"])
async def test_each_yielded_value_is_an_output_and_the_result_is_empty(spawn, handler: str) -> None:
    runtime = await spawn("outputs", f"index.{handler}")
    frames = await talk_once(runtime, b'{"n": 3}')
    assert outputs(frames) == [{"step": 0}, {"step": 1}, {"step": 2}]
    assert frames[-1].Payload == b"" and frames[-1].Code == 0


async def test_a_handler_thread_may_publish(spawn) -> None:
    runtime = await spawn("outputs", "index.from_a_thread")
    frames = await talk_once(runtime, b"{}")
    assert [frame.Payload for frame in frames] == [b'"from a thread"', b'"after"']


async def test_a_wildcard_topic_is_refused_in_the_handler(spawn) -> None:
    runtime = await spawn("outputs", "index.bad_topic")
    frames = await talk_once(runtime, b"{}")
    assert len(frames) == 1
    assert "cannot be published to" in orjson.loads(frames[0].Payload)["refused"]


async def test_outputs_before_a_failure_are_sent_then_the_failure(spawn) -> None:
    runtime = await spawn("outputs", "index.then_fails")
    first, answer = await talk_once(runtime, b"{}")
    assert first.Output and orjson.loads(first.Payload) == {"before": 1}
    assert answer.Code == grpc.StatusCode.UNKNOWN.value[0]
    assert orjson.loads(answer.Error)["errorType"] == "RuntimeError"


async def test_unary_call_returns_the_result_only(spawn) -> None:
    runtime = await spawn("outputs", "index.publishes")
    reply = await runtime.call(b'{"n": 3}', Topic="in/t")
    assert orjson.loads(reply.Payload) == {"done": "in/t", "dict": True}
    generated = await (await spawn("outputs", "index.generates")).call(b"{}")
    assert generated.Payload == b""


def test_context_is_a_dict_whose_publish_checks_its_arguments() -> None:
    from edgefn.runtimes.python.invoke import Context

    context = Context(messageTopic="t")
    context._outputs, context._sequence = None, 1
    assert context["messageTopic"] == "t" and orjson.loads(orjson.dumps(context)) == {"messageTopic": "t"}
    context.publish({"dropped": True})  # no stream (a unary Call): nothing, no error
    with pytest.raises(TypeError, match="context.publish: got a set that cannot be JSON encoded"):
        context.publish({1, 2})
    with pytest.raises(ValueError, match="qos must be"):
        context.publish(1, qos=5)
