"""Talk (the manager's pipelined stream) and the message size limit, on the Node runtime."""

from __future__ import annotations

import json
from typing import Any

import grpc

from edgefn.wire import function_pb2


def test_talk_pipelined_with_one_failure_in_the_middle(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.maybeFail")
    events = [{"n": n, "fail": n == 3} for n in range(1, 6)]
    replies = instance.talk([json.dumps(event).encode() for event in events])
    assert sorted(replies) == [1, 2, 3, 4, 5]
    for n in (1, 2, 4, 5):
        assert (replies[n].Code, replies[n].Error, json.loads(replies[n].Payload)) == (0, "", {"n": n})
        assert replies[n].ID == 100 + n  # the request's fields come back
    failed = replies[3]
    assert failed.Code == grpc.StatusCode.UNKNOWN.value[0]
    assert failed.Payload == b""
    fault = json.loads(failed.Error)
    assert (fault["errorType"], fault["errorMessage"]) == ("RangeError", "call 3 fails")
    assert fault["errorStack"] and fault["errorStack"][0].startswith("at exports.maybeFail (index.js:")


def test_talk_runs_sync_calls_one_at_a_time_in_arrival_order(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.syncOrder")
    replies = instance.talk([json.dumps({"n": n}).encode() for n in range(1, 7)])
    answers = [json.loads(replies[n].Payload) for n in range(1, 7)]
    assert answers == [{"n": n, "overlap": 1} for n in range(1, 7)]


def test_talk_runs_async_calls_concurrently(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.asyncOverlap")
    replies = instance.talk([json.dumps({"n": n, "ms": 300}).encode() for n in range(1, 5)])
    overlaps = [json.loads(replies[n].Payload)["overlap"] for n in range(1, 5)]
    assert max(overlaps) > 1


def test_oversize_result_is_message_too_large_on_call(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.sized", args=["--message-max", "1024"], message_max=1024)
    assert len(instance.call(b'{"bytes": 1024}').Payload) == 1024  # the limit itself is fine
    code, fault = instance.call_fails(b'{"bytes": 1025}')
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert fault["errorType"] == "Runtime.MessageTooLarge"


def test_oversize_result_on_talk_fails_that_call_only(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.sized", env={"EDGEFN_MESSAGE_MAX": "1k"}, message_max=1024)
    replies = instance.talk([b'{"bytes": 10}', b'{"bytes": 5000}', b'{"bytes": 20}'])
    assert (replies[1].Code, len(replies[1].Payload)) == (0, 10)
    assert replies[2].Code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert json.loads(replies[2].Error)["errorType"] == "Runtime.MessageTooLarge"
    assert (replies[3].Code, len(replies[3].Payload)) == (0, 20)


def test_request_above_the_grpc_limit_is_refused(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.sized", args=["--message-max", "1024"], message_max=1024 * 1024)
    # The runtime's receive limit is message-max + 64 KiB for the other fields.
    padded = json.dumps({"bytes": 10, "pad": "x" * 2048}).encode()
    assert instance.call(padded).Payload == b"a" * 10  # above message-max, within the room: served
    try:
        instance.call(json.dumps({"bytes": 10, "pad": "x" * (65 * 1024 + 1)}).encode())
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    else:
        raise AssertionError("an oversize request was accepted")


def test_talk_stream_ends_ok_when_the_client_half_closes(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.value")
    assert instance.talk([]) == {}
    replies = instance.stub.Talk(iter([function_pb2.FunctionMessage(Payload=b"1", Sequence=9)]), timeout=10)
    assert [(r.Sequence, r.Payload) for r in replies] == [(9, b'{"style":"value","event":1}')]
    assert replies.code() == grpc.StatusCode.OK
