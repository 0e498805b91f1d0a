"""Error details always fit gRPC's metadata, stay valid JSON and say when they were cut."""

from __future__ import annotations

import base64

import orjson
from hypothesis import given
from hypothesis import strategies as st

from edgefn.manager import trailer
from edgefn.manager.message import Call, envelope_fields
from edgefn.runtimes.faults import Fault


def fields(payload: bytes = b"", message: str = "boom", stack: list[str] | None = None, topic: str = "t") -> dict:
    call = Call(id=7, qos=1, topic=topic, payload=payload, timestamp=1795285009, function="f", invoke_id="i")
    return envelope_fields(call, Fault("ValueError", message, stack or []), runtime="python", attempts=1)


def test_small_details_are_the_envelope_as_is() -> None:
    envelope = fields(b'{"a": 1}')
    assert orjson.loads(trailer.fit(envelope)) == envelope


def test_a_large_payload_is_cut_first_and_the_cut_is_said() -> None:
    details = orjson.loads(trailer.fit(fields(b"x" * 64 * 1024)))
    assert details["errorType"] == "ValueError" and details["errorMessage"] == "boom"
    assert details["detailsTruncated"] is True and details["functionMessage"]["PayloadTruncated"] is True
    assert base64.b64decode(details["functionMessage"]["Payload"]) == b"x" * trailer.PAYLOAD_KEEP
    assert set(details["functionMessage"]) >= {"ID", "QOS", "Topic", "Payload", "Timestamp", "FunctionName",
                                               "FunctionInvokeID"}


def test_a_long_message_and_stack_keep_their_head_and_ends() -> None:
    stack = [f'File "index.py", line {n}, in f' for n in range(500)]
    details = orjson.loads(trailer.fit(fields(message="m" * 100_000, stack=stack)))
    assert details["errorMessage"].startswith("m" * 100) and "characters cut" in details["errorMessage"]
    assert details["errorStack"][0] == stack[0] and details["errorStack"][-1] == stack[-1]
    assert any("frames cut" in frame for frame in details["errorStack"])


text = st.text(st.characters(codec="utf-8"), max_size=20_000)


@given(payload=st.binary(max_size=30_000), message=text, topic=text,
       stack=st.lists(st.text(max_size=3000), max_size=60))
def test_any_envelope_fits_the_limit_as_valid_json(payload: bytes, message: str, topic: str, stack: list[str]) -> None:
    details = trailer.fit(fields(payload, message, stack, topic))
    assert trailer.wire_size(details.encode()) <= trailer.DETAILS_MAX
    parsed = orjson.loads(details)
    assert isinstance(parsed["errorType"], str) and "functionMessage" in parsed


def test_wire_size_counts_percent_encoding() -> None:
    assert trailer.wire_size(b"abc") == 3
    assert trailer.wire_size("é%".encode()) == 9
