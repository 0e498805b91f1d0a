"""Talk, the manager's fast path: pipelined calls answered by Sequence; failures never end the stream."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import orjson
import pytest

from edgefn.wire.function_pb2 import FunctionMessage


async def answers(call: grpc.aio.StreamStreamCall, count: int) -> dict[int, FunctionMessage]:
    got: dict[int, FunctionMessage] = {}
    while len(got) < count:
        reply = await asyncio.wait_for(call.read(), 15)
        assert reply is not grpc.aio.EOF
        got[reply.Sequence] = reply
    return got


async def test_pipelined_sync_calls_run_one_at_a_time_in_order_and_a_failure_does_not_end_the_stream(spawn) -> None:
    runtime = await spawn("echo", "index.serial")
    call = runtime.stub.Talk()
    for n in range(1, 6):
        await call.write(FunctionMessage(Sequence=100 + n, Payload=orjson.dumps({"n": n, "fail": n == 3})))
    got = await answers(call, 5)
    assert got[103].Code == grpc.StatusCode.UNKNOWN.value[0]
    assert orjson.loads(got[103].Error)["errorType"] == "ValueError"
    assert got[103].Payload == b""
    last = orjson.loads(got[105].Payload)
    assert last["arrivals"] == [1, 2, 3, 4, 5]
    assert last["most_active"] == 1
    assert all(got[s].Code == 0 and not got[s].Error for s in (101, 102, 104, 105))
    await call.write(FunctionMessage(Sequence=106, Payload=b'{"n": 6}'))  # still open after the failure
    assert orjson.loads((await answers(call, 1))[106].Payload)["n"] == 6
    await call.done_writing()
    assert await asyncio.wait_for(call.read(), 15) is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


async def test_async_calls_on_one_stream_run_concurrently(spawn) -> None:
    runtime = await spawn("async_handler")
    call = runtime.stub.Talk()
    await call.write(FunctionMessage(Sequence=1, Payload=b'{"gate": "t"}'))
    await call.write(FunctionMessage(Sequence=2, Payload=b'{"gate": "t", "open": true}'))
    got = await answers(call, 2)
    assert (got[1].Payload, got[2].Payload) == (b'"passed"', b'"opened"')
    await call.done_writing()


async def test_talk_reply_carries_the_fault_code_and_details(spawn) -> None:
    runtime = await spawn("echo", "index.returns")
    call = runtime.stub.Talk()
    await call.write(FunctionMessage(Sequence=9, Payload=b'"set"'))
    reply = (await answers(call, 1))[9]
    assert reply.Code == grpc.StatusCode.UNKNOWN.value[0]
    assert orjson.loads(reply.Error)["errorType"] == "Runtime.UnserializableResult"
    await call.done_writing()


async def test_oversize_result_is_message_too_large_on_call_and_talk(spawn) -> None:
    runtime = await spawn("echo", "index.big", args=["--message-max", "1k"])
    assert (await runtime.call(b"1024")).Payload == b"x" * 1024
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await runtime.call(b"1025")
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert orjson.loads(failed.value.details())["errorType"] == "Runtime.MessageTooLarge"
    call = runtime.stub.Talk()
    await call.write(FunctionMessage(Sequence=1, Payload=b"5000"))
    await call.write(FunctionMessage(Sequence=2, Payload=b"10"))
    got = await answers(call, 2)
    assert got[1].Code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert orjson.loads(got[1].Error)["errorType"] == "Runtime.MessageTooLarge"
    assert got[2].Payload == b"x" * 10
    await call.done_writing()


async def test_oversize_input_is_refused_by_grpc(spawn) -> None:
    runtime = await spawn("echo", "index.big", args=["--message-max", "1k"])
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await runtime.call(b" " * (1024 + 65 * 1024))
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_another_functions_name_is_not_found_on_call_and_talk(spawn) -> None:
    runtime = await spawn("echo", args=["--name", "echo"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await runtime.call(b"{}", FunctionName="nosuch")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    details = orjson.loads(caught.value.details())
    assert details["errorType"] == "Runtime.FunctionNotFound" and "nosuch" in details["errorMessage"]
    call = runtime.stub.Talk()
    await call.write(FunctionMessage(Sequence=1, Payload=b"{}", FunctionName="nosuch"))
    await call.write(FunctionMessage(Sequence=2, Payload=b"{}", FunctionName="echo"))
    await call.write(FunctionMessage(Sequence=3, Payload=b"{}"))  # no name: the one function it serves
    got = await answers(call, 3)
    assert got[1].Code == grpc.StatusCode.NOT_FOUND.value[0]
    assert orjson.loads(got[1].Error)["errorType"] == "Runtime.FunctionNotFound"
    assert got[2].Code == 0 and got[3].Code == 0
    await call.done_writing()
