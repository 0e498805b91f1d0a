"""SPEC §5 in the Python runtime: event, context, result, user errors — over real gRPC."""

from __future__ import annotations

import asyncio
import os

import grpc
import orjson
import pytest


async def echo(spawn, payload: bytes, **fields: object) -> dict:
    runtime = await spawn("echo")
    reply = await runtime.call(payload, **fields)
    return orjson.loads(reply.Payload)


async def test_empty_payload_is_an_empty_dict(spawn) -> None:
    seen = await echo(spawn, b"")
    assert (seen["type"], seen["event"]) == ("dict", {})


async def test_json_object_payload_is_a_dict(spawn) -> None:
    seen = await echo(spawn, b'{"a": [1, 2], "b": {"c": null}}')
    assert (seen["type"], seen["event"]) == ("dict", {"a": [1, 2], "b": {"c": None}})


@pytest.mark.parametrize(
    ("payload", "kind", "value"),
    [(b"5", "int", 5), (b"-2.5", "float", -2.5), (b'"text"', "str", "text"), (b"true", "bool", True),
     (b"null", "NoneType", None), (b"[1, 2]", "list", [1, 2])],
)
async def test_json_scalar_payloads_are_their_values(spawn, payload: bytes, kind: str, value: object) -> None:
    seen = await echo(spawn, payload)
    assert (seen["type"], seen["event"]) == (kind, value)


@pytest.mark.parametrize("payload", [b"hello", b"\xff\x00\x01", b'{"broken": ', b"12 apples"])
async def test_non_json_payload_is_the_raw_bytes(spawn, payload: bytes) -> None:
    seen = await echo(spawn, payload)
    assert (seen["type"], seen["event"]) == ("bytes", payload.hex())


async def test_context_carries_the_message_fields(spawn) -> None:
    runtime = await spawn("echo")
    reply = await runtime.call(
        b"{}", ID=7, QOS=1, Topic="t/1", Timestamp=1795285009, FunctionName="echo", FunctionInvokeID="inv-1"
    )
    assert orjson.loads(reply.Payload)["context"] == {
        "messageQOS": 1, "messageTopic": "t/1", "messageRetain": False, "messageTimestamp": 1795285009,
        "functionName": "echo", "functionInvokeID": "inv-1", "invokeid": "inv-1",
    }


async def test_context_message_retain_says_the_input_came_retained(spawn) -> None:
    runtime = await spawn("echo")
    reply = await runtime.call(b"{}", QOS=2, Topic="t/1", Retain=True)
    context = orjson.loads(reply.Payload)["context"]
    assert (context["messageRetain"], context["messageQOS"]) == (True, 2)


async def test_context_function_name_falls_back_to_the_runtime_name(spawn) -> None:
    runtime = await spawn("echo", args=["--name", "named"])
    reply = await runtime.call(b"{}")
    assert orjson.loads(reply.Payload)["context"]["functionName"] == "named"


async def test_call_reply_copies_the_request_fields(spawn) -> None:
    runtime = await spawn("echo")
    request = dict(ID=2**63 + 5, QOS=1, Topic="t", Timestamp=-3, FunctionName="f", FunctionInvokeID="i")
    reply = await runtime.call(b"{}", **request)
    assert {name: getattr(reply, name) for name in request} == request


@pytest.mark.parametrize(
    ("what", "payload"),
    [("none", b""), ("empty", b""), ("zero", b"0"), ("false", b"false"), ("bytes", b"\x00\xffraw"),
     ("bytearray", b"ba"), ("str", b'"hi"'), ("list", b'[1,"a",null]'), ("intkeys", b'{"1":"a"}'),
     ("bigint", str(2**70).encode())],
)
async def test_results_are_published_per_the_spec(spawn, what: str, payload: bytes) -> None:
    runtime = await spawn("echo", "index.returns")
    reply = await runtime.call(orjson.dumps(what))
    assert reply.Payload == payload


@pytest.mark.parametrize("what", ["set", "object"])
async def test_unserializable_result_is_a_fault(spawn, what: str) -> None:
    runtime = await spawn("echo", "index.returns")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await runtime.call(orjson.dumps(what))
    assert failed.value.code() == grpc.StatusCode.UNKNOWN
    fault = orjson.loads(failed.value.details())
    assert fault["errorType"] == "Runtime.UnserializableResult"
    assert what in fault["errorMessage"]


async def test_user_exception_names_its_class_and_shows_only_user_frames(spawn) -> None:
    runtime = await spawn("raises")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await runtime.call(b'"boom"')
    assert failed.value.code() == grpc.StatusCode.UNKNOWN
    assert orjson.loads(failed.value.details()) == {
        "errorType": "ValueError",
        "errorMessage": "bad input: 'boom'",
        "errorStack": ['File "index.py", line 5, in handler', 'File "helper.py", line 2, in explode'],
    }


async def test_a_failed_call_leaves_the_runtime_serving(spawn) -> None:
    runtime = await spawn("echo", "index.exits")
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await runtime.call(b"{}")
        assert orjson.loads(failed.value.details())["errorType"] == "SystemExit"
    assert runtime.process.returncode is None


async def test_async_handlers_run_concurrently(spawn) -> None:
    runtime = await spawn("async_handler")
    assert runtime.handshake["concurrent"] is True
    waiting = runtime.call(b'{"gate": "g1"}')
    opening = runtime.call(b'{"gate": "g1", "open": true}')
    passed, opened = await asyncio.gather(waiting, opening)
    assert (passed.Payload, opened.Payload) == (b'"passed"', b'"opened"')


async def test_async_handler_exception_shows_user_frames(spawn) -> None:
    runtime = await spawn("async_handler", "index.fails")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await runtime.call(b'"k"')
    fault = orjson.loads(failed.value.details())
    assert (fault["errorType"], fault["errorStack"]) == ("KeyError", ['File "index.py", line 19, in fails'])


async def test_sync_handler_is_reported_not_concurrent(spawn) -> None:
    runtime = await spawn("echo")
    assert runtime.handshake["concurrent"] is False


async def test_function_env_is_visible(spawn) -> None:
    runtime = await spawn("echo", "index.env", env={"GREETING": "hi", "EDGEFN_FUNCTION_NAME": "envy"})
    reply = await runtime.call(b'["GREETING", "EDGEFN_FUNCTION_NAME"]')
    assert orjson.loads(reply.Payload) == {"GREETING": "hi", "EDGEFN_FUNCTION_NAME": "envy"}


async def test_handler_prints_go_to_stderr_not_stdout(spawn) -> None:
    runtime = await spawn("echo", "index.prints")
    assert (await runtime.call(b"{}")).Payload == b'"ok"'
    await runtime.stderr_line("printed by the handler")
    assert runtime.process.stdout is not None
    assert await runtime.process.stdout.read() == b""  # the handshake was stdout's only line


async def test_sayhi_example_adds_context_and_greeting(spawn) -> None:
    runtime = await spawn(os.path.join("..", "..", "functions", "sayhi"))
    reply = await runtime.call(b'{"id": 1}', QOS=1, Topic="t", FunctionName="sayhi", FunctionInvokeID="i")
    assert orjson.loads(reply.Payload) == {
        "id": 1, "functionName": "sayhi", "functionInvokeID": "i", "messageQOS": 1, "messageTopic": "t",
        "sayhi": "hello, world",
    }
    reply = await runtime.call(b"plain text", FunctionName="sayhi")
    assert orjson.loads(reply.Payload)["bytes"] == "plain text"



async def test_sync_handler_returning_a_coroutine_is_awaited(spawn) -> None:
    runtime = await spawn("echo", "index.wraps_async")
    assert (await runtime.call(b"3")).Payload == b'{"awaited":3}'


async def test_a_huge_error_message_is_cut_not_turned_into_a_transport_error(spawn) -> None:
    runtime = await spawn("echo", "index.raises_long")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await runtime.call(b"200000")
    assert failed.value.code() == grpc.StatusCode.UNKNOWN
    fault = orjson.loads(failed.value.details())
    assert fault["errorType"] == "ValueError"
    assert fault["errorMessage"].startswith("xxx") and fault["errorMessage"].endswith("more characters)")


async def test_a_deep_recursion_keeps_its_outer_and_inner_frames(spawn) -> None:
    runtime = await spawn("echo", "index.recurses")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await runtime.call(b"{}")
    fault = orjson.loads(failed.value.details())
    assert fault["errorType"] == "RecursionError"
    stack = fault["errorStack"]
    assert len(stack) == 17 and "frames omitted" in stack[8]
    assert stack[0] == stack[-1] == 'File "index.py", line 88, in recurses'


@pytest.mark.parametrize("number", [2**64 + 1, -(2**63) - 1, 123456789012345678901234567890, -(10**29) - 7])
async def test_integers_of_any_size_pass_through_a_handler_exactly(spawn, number: int) -> None:
    import json

    runtime = await spawn("echo")
    reply = await runtime.call(f'{{"n": {number}, "list": [{number}], "small": 1.5}}'.encode())
    seen = json.loads(reply.Payload)  # the standard library keeps big integers exact
    assert seen["event"] == {"n": number, "list": [number], "small": 1.5}
    assert type(seen["event"]["n"]) is int
