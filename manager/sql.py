"""SQL functions run in the manager's process (SPEC §9): no gRPC hop, no pool.

The statement is parsed and compiled once, when the runner is built; a call is
one evaluation of the compiled closure, which never raises anything but a Fault.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edgefn.manager.config import FunctionConfig
from edgefn.manager.message import Call
from edgefn.manager.metrics import FunctionStats
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from edgefn.runtimes.sql import SqlFunction

if TYPE_CHECKING:
    from edgefn.manager.client import OutputSink


class SqlRunner:
    """A compiled SQL function with the same ``call`` shape as a pool."""

    runtime = "sql"
    waiting = 0  # evaluation is synchronous: nothing ever waits for a slot

    def __init__(self, function: FunctionConfig, stats: FunctionStats) -> None:
        self.function = function
        self.stats = stats
        self.message_max = function.instance.message_max
        self._compiled = SqlFunction.compile(function.name, function.handler)  # raises SqlError

    async def start(self) -> None:
        """Nothing to start: compiled at construction."""

    async def stop(self, grace: float) -> None:
        """Nothing to stop."""

    async def call(self, call: Call, outputs: OutputSink | None = None) -> bytes:
        """Evaluate the statement on the call's message (a statement has one output: its result)."""
        started = time.monotonic()
        try:
            if len(call.payload) > self.message_max:
                raise Fault(
                    faults.MESSAGE_TOO_LARGE,
                    f"input of {len(call.payload)} bytes exceeds message.length.max ({self.message_max} bytes)",
                )
            result = self._compiled.evaluate(call.payload, call.topic, call.qos)
            if len(result) > self.message_max:
                raise Fault(faults.MESSAGE_TOO_LARGE, f"result of {len(result)} bytes exceeds message.length.max")
        except Fault:
            self.stats.observe(time.monotonic() - started, True)
            raise
        self.stats.observe(time.monotonic() - started, False)
        return result
