"""Talk frames: calls (manager → runtime) or answers (runtime → manager) that are
queued at the same moment travel together in one ``Batch`` frame.

A stream write costs about the same whatever it carries (~75 µs of the
manager's CPU), so under load one frame for many messages is the cheap way.
Both ends build their frames with :func:`take_batch`.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from edgefn.wire.function_pb2 import FunctionMessage

# At most this many bytes of messages share one frame: far below the gRPC size
# limit (message.length.max + 64 KiB), whatever the function's limit.
BATCH_BYTES = 32 * 1024

T = TypeVar("T")


def take_batch(
    queue: asyncio.Queue[T], first: FunctionMessage, max_items: int
) -> tuple[list[FunctionMessage], list[T]]:
    """``first`` plus the messages queued right now, within ``max_items`` and ``BATCH_BYTES``.

    Returns the batch and, as a list of at most one, the item that ended it
    early (a message that did not fit, or a sentinel that is not a message),
    which the caller handles next. Never waits.
    """
    batch, size = [first], first.ByteSize()
    while not queue.empty() and len(batch) < max_items:
        item = queue.get_nowait()
        if not isinstance(item, FunctionMessage):
            return batch, [item]
        item_size = item.ByteSize()
        if size + item_size > BATCH_BYTES:
            return batch, [item]
        batch.append(item)
        size += item_size
    return batch, []
