"""Size limits on the wire, shared by the manager, the runtimes and ``edgefn call``.

A gRPC frame carries a payload of up to ``message.length.max`` bytes plus the
message's other fields (topic, names, ids, an error's details): every channel
and server allows that much more than the payload limit.
"""

from __future__ import annotations

# Room for a FunctionMessage's other fields above its payload.
MESSAGE_ROOM = 64 * 1024
# message.length.max when nothing says otherwise (Baetyl's default).
DEFAULT_MESSAGE_MAX = 4 * 1024 * 1024
# MQTT's largest payload (its remaining-length field's most); gRPC limits are set
# from message sizes, so every one of them must fit an int32 too.
MQTT_MESSAGE_MAX = 268_435_455


def size_options(message_max: int) -> list[tuple[str, int]]:
    """gRPC channel/server options letting a payload of ``message_max`` bytes through, both ways."""
    limit = message_max + MESSAGE_ROOM
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
