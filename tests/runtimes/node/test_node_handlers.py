"""Node handlers as users write them (SPEC §5, issue #4): styles, events, results, errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import pytest

from edgefn.wire import function_pb2

EVENT = {"a": 1, "b": [True, None, "x"]}


@pytest.mark.parametrize(
    ("handler", "style"),
    [
        ("index.callback", "callback"),
        ("index.value", "value"),
        ("index.asyncFn", "async"),
        ("index.promise", "promise"),
    ],
)
def test_each_handler_style_answers(node_runtime: Any, handler: str, style: str) -> None:
    instance = node_runtime.start("js_styles", handler)
    assert instance.call_json(EVENT) == {"style": style, "event": EVENT}


def test_esm_handler_in_an_mjs_file(node_runtime: Any) -> None:
    instance = node_runtime.start("js_esm", "index.handler")
    assert instance.call_json({"k": 1}) == {"esm": "mjs", "functionName": "js_esm", "event": {"k": 1}}


def test_esm_handler_under_package_type_module(node_runtime: Any) -> None:
    instance = node_runtime.start("js_esm_type", "index.handler")
    assert instance.call_json({}) == {"esm": "type-module", "file": "index.js"}


def test_esm_handler_error_keeps_user_frames(node_runtime: Any) -> None:
    instance = node_runtime.start("js_esm_type", "index.fails")
    code, fault = instance.call_fails(b"{}")
    assert code == grpc.StatusCode.UNKNOWN
    assert fault["errorType"] == "TypeError"
    assert fault["errorStack"] == ["at fails (index.js:7:9)"]


def test_handler_in_a_subfolder_and_a_nested_attribute(node_runtime: Any) -> None:
    assert node_runtime.start("js_styles", "lib/mod.handler").call_json({}) == {"from": "lib/mod"}
    assert node_runtime.start("js_styles", "index.api.get").call_json({}) == {"nested": True}


@pytest.mark.parametrize(
    ("payload", "is_buffer", "event"),
    [
        (b"", False, {}),
        (b'{"x": [1, 2]}', False, {"x": [1, 2]}),
        (b"42", False, 42),
        (b'"text"', False, "text"),
        (b"true", False, True),
        (b"null", False, None),
        (b"  [1] \n", False, [1]),
        (b"plain text", True, base64.b64encode(b"plain text").decode()),
        (b"\x00\x01\xfe\xff", True, base64.b64encode(b"\x00\x01\xfe\xff").decode()),
        (b'"\xff"', True, base64.b64encode(b'"\xff"').decode()),  # invalid UTF-8 is bytes, not JSON
        (b"{broken", True, base64.b64encode(b"{broken").decode()),
    ],
)
def test_event_is_json_value_or_buffer(node_runtime: Any, payload: bytes, is_buffer: bool, event: Any) -> None:
    instance = node_runtime.start("js_styles", "index.echo")
    seen = json.loads(instance.call(payload).Payload)
    assert seen["isBuffer"] is is_buffer
    assert seen["event"] == event


def test_context_carries_the_message_fields(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.echo")
    reply = instance.call(b"{}", QOS=1, Topic="a/b", Timestamp=1795285009, FunctionName="js_styles",
                          FunctionInvokeID="inv-1")
    seen = json.loads(reply.Payload)
    assert seen["context"] == {
        "messageQOS": 1,
        "messageTopic": "a/b",
        "messageRetain": False,
        "messageTimestamp": 1795285009,
        "functionName": "js_styles",
        "functionInvokeID": "inv-1",
        "invokeid": "inv-1",
    }
    assert seen["timestampType"] == "number"
    retained = json.loads(instance.call(b"{}", QOS=2, Retain=True).Payload)["context"]
    assert (retained["messageRetain"], retained["messageQOS"]) == (True, 2)
    # An empty FunctionName falls back to the runtime's --name.
    assert json.loads(instance.call(b"{}", FunctionName="").Payload)["context"]["functionName"] == "js_styles"


def test_another_functions_name_is_not_found_on_call_and_talk(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.echo")
    code, details = instance.call_fails(b"{}", FunctionName="nosuch")
    assert code == grpc.StatusCode.NOT_FOUND
    assert details["errorType"] == "Runtime.FunctionNotFound" and "nosuch" in details["errorMessage"]
    request = function_pb2.FunctionMessage(Payload=b"{}", FunctionName="nosuch", Sequence=7)
    (answer,) = instance.stub.Talk(iter([request]), timeout=10)
    assert (answer.Sequence, answer.Code) == (7, grpc.StatusCode.NOT_FOUND.value[0])
    assert json.loads(answer.Error)["errorType"] == "Runtime.FunctionNotFound"
    assert instance.call_json({"x": 1}, FunctionName="js_styles")["event"] == {"x": 1}  # its own name runs


def test_reply_copies_the_request_fields_and_a_large_id(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.value")
    big_id = 2**64 - 1  # uint64 survives: the proto is loaded with longs as strings
    reply = instance.call(b"1", ID=big_id, QOS=1, Topic="t/x", Timestamp=-5, FunctionName="js_styles",
                          FunctionInvokeID="i")
    assert (reply.ID, reply.QOS, reply.Topic, reply.Timestamp) == (big_id, 1, "t/x", -5)
    assert (reply.FunctionName, reply.FunctionInvokeID) == ("js_styles", "i")


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("emptyString", b'""'),
        ("zero", b"0"),
        ("false", b"false"),
        ("string", b'"hi"'),
        ("null", b""),
        ("undefined", b""),
        ("emptyBuffer", b""),
        ("buffer", b"\x00\x01\x02\xff"),
        ("uint8array", b"\x07\x08\x09"),
    ],
)
def test_result_payload(node_runtime: Any, kind: str, payload: bytes) -> None:
    instance = node_runtime.start("js_styles", "index.result")
    assert instance.call(json.dumps({"kind": kind}).encode()).Payload == payload


@pytest.mark.parametrize("kind", ["circular", "bigint", "function"])
def test_unserializable_result_is_a_fault(node_runtime: Any, kind: str) -> None:
    instance = node_runtime.start("js_styles", "index.result")
    code, fault = instance.call_fails(json.dumps({"kind": kind}).encode())
    assert code == grpc.StatusCode.UNKNOWN
    assert fault["errorType"] == "Runtime.UnserializableResult"
    assert fault["errorStack"] == []


@pytest.mark.parametrize(
    ("handler", "error_type", "message", "stack"),
    [
        ("index.callbackErr", "TypeError", "bad event", ["at exports.callbackErr (index.js:5:12)"]),
        ("index.reject", "RangeError", "out of range", ["at exports.reject (index.js:9:9)"]),
        (
            "index.throwSync",
            "TypeError",
            "no field undefined",
            ["at helper (index.js:17:9)", "at exports.throwSync (index.js:13:10)"],
        ),
        ("index.throwNonError", "Error", "[object Object]", []),
        ("index.throwString", "Error", "plain string", []),
        ("index.rejectUndefined", "Error", "undefined", []),
        ("index.custom", "ValidationError", "invalid", ["at exports.custom (index.js:31:9)"]),
    ],
)
def test_user_error_envelope_has_user_frames_only(
    node_runtime: Any, handler: str, error_type: str, message: str, stack: list[str]
) -> None:
    instance = node_runtime.start("js_errors", handler)
    code, fault = instance.call_fails(b"{}")
    assert code == grpc.StatusCode.UNKNOWN
    assert fault == {"errorType": error_type, "errorMessage": message, "errorStack": stack}


def test_callback_called_twice_first_answer_wins_and_warns(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.callbackTwice")
    assert instance.call(b"{}").Payload == b'"first"'
    assert instance.call(b"{}").Payload == b'"first"'  # the runtime goes on serving
    assert "answered twice" in instance.stderr()


def test_uncaught_exception_during_a_call_fails_that_call(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.uncaught")
    code, fault = instance.call_fails(b"{}")
    assert code == grpc.StatusCode.UNKNOWN
    assert (fault["errorType"], fault["errorMessage"]) == ("Error", "thrown from a timer")
    assert fault["errorStack"][0].startswith("at Timeout._onTimeout (index.js:")
    assert instance.process.poll() is None
    assert "uncaught exception failed a call" in instance.stderr()


def test_require_resolves_from_the_codedir_node_modules(node_runtime: Any) -> None:
    instance = node_runtime.start("js_vendored")
    assert instance.call_json({"name": "edge"}) == {"greeting": "hello, edge", "version": "1.0.0"}


def test_two_functions_never_share_module_state(node_runtime: Any) -> None:
    first = node_runtime.start("js_state", args=["--name", "first"])
    second = node_runtime.start("js_state", args=["--name", "second"])
    assert first.call_json({}, FunctionName="first") == {"calls": 1, "firstSeenBy": "first"}
    assert first.call_json({}, FunctionName="first") == {"calls": 2, "firstSeenBy": "first"}
    assert second.call_json({}, FunctionName="second") == {"calls": 1, "firstSeenBy": "second"}


def test_sayjs_example_from_baetyl_docs(node_runtime: Any) -> None:
    instance = node_runtime.start("../../functions/sayjs")
    reply = instance.call_json({"x": 1}, QOS=1, Topic="t", Timestamp=1795285009, FunctionName="sayjs", FunctionInvokeID="id-1")
    assert reply == {
        "x": 1,
        "messageQOS": 1,
        "messageTopic": "t",
        "messageTimestamp": 1795285009,
        "functionName": "sayjs",
        "functionInvokeID": "id-1",
        "Say": "Hello Baetyl",
    }
    assert json.loads(instance.call(b"raw bytes", FunctionName="sayjs").Payload)["bytes"] == "raw bytes"
    code, fault = instance.call_fails(b'{"err": "bad input"}')
    assert code == grpc.StatusCode.UNKNOWN
    assert (fault["errorType"], fault["errorMessage"]) == ("TypeError", "bad input")
