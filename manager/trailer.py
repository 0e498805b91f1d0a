"""Error details that always fit gRPC's metadata.

A failed direct call carries its error envelope as the status details, which
gRPC sends in a trailer. Clients refuse trailers beyond 8 KiB by default
(``grpc.max_metadata_size``), and then the envelope is lost and the call ends in
a transport error instead. So the details are cut to fit, in order of what
matters least: the echoed input payload, the stack's middle frames, the
message's tail, the topic. The result is still valid JSON, and
``"detailsTruncated": true`` says that it was cut.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

# Well inside the 8 KiB default, with room for gRPC's other trailers.
DETAILS_MAX = 6 * 1024
PAYLOAD_KEEP = 512  # bytes of the input payload kept when it is cut
MESSAGE_KEEP = 1000  # characters of errorMessage kept
FRAMES_KEEP = 4  # frames kept at each end of errorStack
FRAME_KEEP = 300  # characters kept of each frame
TOPIC_KEEP = 200
# Printable ASCII travels as is in grpc-message; every other byte (and %) is percent-encoded.
_PLAIN = bytes(range(0x20, 0x7F)).replace(b"%", b"")


def wire_size(details: bytes) -> int:
    """The size of ``details`` once percent-encoded into the grpc-message trailer."""
    return len(details) + 2 * len(details.translate(None, _PLAIN))


def fit(envelope: dict[str, Any], limit: int = DETAILS_MAX) -> str:
    """``envelope`` as JSON no larger than ``limit`` on the wire, cut where it matters least."""
    details = orjson.dumps(envelope)
    if wire_size(details) <= limit:
        return details.decode()
    cut = {**envelope, "detailsTruncated": True}
    if isinstance(cut.get("functionMessage"), dict):
        cut["functionMessage"] = dict(cut["functionMessage"])
    for step in _STEPS:
        step(cut)
        details = orjson.dumps(cut)
        if wire_size(details) <= limit:
            return details.decode()
    return orjson.dumps(_minimal(cut, limit)).decode()


def _cut_payload(envelope: dict[str, Any]) -> None:
    message = envelope.get("functionMessage")
    if not isinstance(message, dict) or not isinstance(message.get("Payload"), str):
        return
    try:
        payload = base64.b64decode(message["Payload"])
    except ValueError:
        payload = b""
    if len(payload) > PAYLOAD_KEEP:
        message["Payload"] = base64.b64encode(payload[:PAYLOAD_KEEP]).decode()
        message["PayloadTruncated"] = True


def _cut_stack(envelope: dict[str, Any]) -> None:
    stack = envelope.get("errorStack")
    if not isinstance(stack, list):
        return
    frames = [_shorten(str(frame), FRAME_KEEP) for frame in stack]
    if len(frames) > 2 * FRAMES_KEEP:
        left = len(frames) - 2 * FRAMES_KEEP
        frames = [*frames[:FRAMES_KEEP], f"... {left} frames cut ...", *frames[-FRAMES_KEEP:]]
    envelope["errorStack"] = frames


def _cut_message(envelope: dict[str, Any]) -> None:
    envelope["errorMessage"] = _shorten(str(envelope.get("errorMessage", "")), MESSAGE_KEEP)


def _cut_topic(envelope: dict[str, Any]) -> None:
    message = envelope.get("functionMessage")
    if isinstance(message, dict) and isinstance(message.get("Topic"), str):
        message["Topic"] = _shorten(message["Topic"], TOPIC_KEEP)


_STEPS: tuple[Callable[[dict[str, Any]], None], ...] = (_cut_payload, _cut_stack, _cut_message, _cut_topic)


def _minimal(envelope: dict[str, Any], limit: int) -> dict[str, Any]:
    """The last resort: the error's type, the head of its message, the input without its payload."""
    message = envelope.get("functionMessage")
    fields = {key: value for key, value in message.items() if key != "Payload"} if isinstance(message, dict) else {}
    keep = max(limit // 8, 16)
    while True:
        small = {
            "errorType": _shorten(str(envelope.get("errorType", "")), keep),
            "errorMessage": _shorten(str(envelope.get("errorMessage", "")), keep),
            "errorStack": [],
            "functionMessage": {**fields, "Topic": _shorten(str(fields.get("Topic", "")), keep),
                                "Payload": "", "PayloadTruncated": True},
            "detailsTruncated": True,
        }
        if wire_size(orjson.dumps(small)) <= limit or keep <= 16:
            return small
        keep //= 2


def _shorten(text: str, keep: int) -> str:
    if len(text) <= keep:
        return text
    return f"{text[:keep]}... ({len(text) - keep} characters cut)"
