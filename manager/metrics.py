"""Per-function counters: one small API the status log, the gRPC server and a
metrics endpoint read (issue #3's observability hook).

Counting is a few integer additions on the hot path; formatting happens only
when someone asks for a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("edgefn.metrics")

# Latency percentiles come from the most recent calls only: bounded memory.
LATENCY_WINDOW = 2048


@dataclass(slots=True)
class FunctionStats:
    """Counters for one function. ``live``/``busy``/``queued`` are read from its pool."""

    name: str
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    crashes: int = 0  # instances that died on their own
    oom_kills: int = 0  # instances killed above instance.memory
    cold_starts: int = 0  # instances started on demand (a call waited for them)
    start_failures: int = 0  # starts that failed (load error, starttimeout)
    dropped: int = 0  # QoS 0 inputs dropped with the function's queue full
    invalid_topics: int = 0  # envelopes (or outputs) dropped: their topic was not a valid one
    outputs: int = 0  # intermediate outputs published (context.publish, yielded values)
    fires: dict[int, int] = field(default_factory=dict)  # scheduled rule's index → fires
    late_fires: dict[int, int] = field(default_factory=dict)  # … of which woke > 1 s after the nominal time
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    gauges: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)

    def observe(self, seconds: float, failed: bool) -> None:
        """Record one finished call."""
        self.calls += 1
        if failed:
            self.errors += 1
        self.latencies.append(seconds)

    def fired(self, rule: int, late: bool) -> None:
        """Record one fire of the scheduled rule at ``rules[rule]``."""
        self.fires[rule] = self.fires.get(rule, 0) + 1
        if late:
            self.late_fires[rule] = self.late_fires.get(rule, 0) + 1

    def snapshot(self) -> dict[str, float | int | str]:
        """The counters as a plain dict (latencies as p50/p99 milliseconds, fires per rule)."""
        live, busy, queued = self.gauges()
        ordered = sorted(self.latencies)
        return {
            "function": self.name,
            "live": live,
            "busy": busy,
            "queued": queued,
            "calls": self.calls,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "crashes": self.crashes,
            "oom_kills": self.oom_kills,
            "cold_starts": self.cold_starts,
            "start_failures": self.start_failures,
            "dropped": self.dropped,
            "invalid_topics": self.invalid_topics,
            "outputs": self.outputs,
            "p50_ms": round(_percentile(ordered, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(ordered, 0.99) * 1000, 2),
            "fires": sum(self.fires.values()),
            "late_fires": sum(self.late_fires.values()),
            **{f"rules[{rule}].fires": count for rule, count in sorted(self.fires.items())},
            **{f"rules[{rule}].late_fires": count for rule, count in sorted(self.late_fires.items())},
        }


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Metrics:
    """All functions' counters, by function name."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionStats] = {}

    def function(self, name: str) -> FunctionStats:
        """The counters of ``name``, created on first use."""
        stats = self.functions.get(name)
        if stats is None:
            stats = self.functions[name] = FunctionStats(name)
        return stats

    def snapshot(self) -> list[dict[str, float | int | str]]:
        return [stats.snapshot() for stats in self.functions.values()]

    async def log_status(self, interval: float) -> None:
        """Log one status line per function every ``interval`` seconds, at debug level."""
        while True:
            await asyncio.sleep(interval)
            if log.isEnabledFor(logging.DEBUG):
                for line in self.snapshot():
                    log.debug("status %s", " ".join(f"{key}={value}" for key, value in line.items()))
