"""Hand work from other threads to the event loop, many items per wakeup, in order.

A sync handler runs on a worker thread; its results and outputs must reach the
loop in the order it produced them. ``call_soon_threadsafe`` per item wakes the
loop once per item (a write to its self-pipe each time), and each wakeup sends
one answer on its own Talk frame. A mailbox wakes the loop once for whatever
piled up meanwhile: the answers that finished together then leave together.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

_MAILBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Mailbox] = weakref.WeakKeyDictionary()
_CREATING = threading.Lock()


class Mailbox:
    """Items posted from any thread run on the loop, in posting order, a pile per wakeup."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._scheduled = False

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop after everything posted before it."""
        with self._lock:
            self._items.append((callback, args))
            if self._scheduled:
                return  # the wakeup already asked for will take this one too
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        while True:
            with self._lock:
                items, self._items = self._items, []
                if not items:
                    self._scheduled = False
                    return
            for callback, args in items:
                callback(*args)


def mailbox(loop: asyncio.AbstractEventLoop) -> Mailbox:
    """The loop's one mailbox (one per loop, so everything posted to it keeps one order)."""
    box = _MAILBOXES.get(loop)
    if box is None:
        with _CREATING:
            box = _MAILBOXES.get(loop)
            if box is None:
                box = _MAILBOXES[loop] = Mailbox(loop)
    return box
