"""How many direct calls of one function the gRPC server holds at once.

Each direct call holds its request (up to ``message.length.max``) until it is
answered. Without a bound, a burst of large calls to a slow function would take
the manager's memory with it; past the bound a call is refused at once with
RESOURCE_EXHAUSTED, which a client can retry later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# Direct calls that may wait per function beyond those its instances can run at once.
WAITING_MAX = 32


class Admission:
    """Counts each function's direct calls in progress against ``running + waiting_max``."""

    def __init__(self, waiting_max: int | None = None) -> None:
        self.waiting_max = WAITING_MAX if waiting_max is None else waiting_max
        self._held: dict[str, int] = {}

    def held(self, function: str) -> int:
        """The direct calls of ``function`` in progress now."""
        return self._held.get(function, 0)

    @contextlib.contextmanager
    def hold(self, function: str, running: int) -> Iterator[str | None]:
        """Hold a place for one call; yields None when admitted, else why it is refused."""
        held = self._held.get(function, 0)
        if held >= running + self.waiting_max:
            yield (f"{function} has {held} direct calls in progress, the most it takes ({running} running, "
                   f"{self.waiting_max} waiting); try again later")
            return
        self._held[function] = held + 1
        try:
            yield None
        finally:
            left = self._held[function] - 1
            if left:
                self._held[function] = left
            else:
                del self._held[function]


def running(runner: object) -> int:
    """How many calls ``runner`` runs at once: ``max × concurrency`` for a pool, 1 otherwise."""
    function = getattr(runner, "function", None)
    instance = getattr(function, "instance", None)
    if instance is None or getattr(runner, "runtime", "") == "sql":
        return 1
    return int(instance.max * instance.concurrency)
