"""Counters per function and per rule: what the status log and the metrics
endpoint (:mod:`edgefn.manager.exposition`) read.

Counting is a few integer additions on the hot path (a call's duration: one
bisect into fixed buckets); formatting happens only when someone asks for a
snapshot or scrapes.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("edgefn.metrics")

# Latency percentiles come from the most recent calls only: bounded memory.
LATENCY_WINDOW = 2048
# Upper bounds (seconds) of the call-duration histogram's buckets; +Inf is the last one.
# With the status line off (logger.status: 0), how often a reload turning it on is noticed.
STATUS_OFF_POLL = 5.0
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


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
    failures: dict[str, int] = field(default_factory=dict)  # errorType → failed calls
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))  # not cumulative
    seconds: float = 0.0  # the sum of every call's duration
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    gauges: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)
    starting: Callable[[], int] = lambda: 0  # instances being started now (read from the pool)

    def observe(self, seconds: float, failed: bool | str) -> None:
        """Record one finished call; ``failed`` is its errorType (or True) when it failed."""
        self.calls += 1
        if failed:
            self.errors += 1
            error_type = failed if isinstance(failed, str) else "Unknown"
            self.failures[error_type] = self.failures.get(error_type, 0) + 1
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.seconds += seconds
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


@dataclass(slots=True)
class RuleStats:
    """Counters for one rule (by its position in ``rules``), kept by its router."""

    index: int
    function: str = ""
    clientid: str = ""
    inputs: int = 0  # messages (or fires) it took
    outputs: int = 0  # results published
    envelopes: int = 0  # error envelopes published (or dropped: nowhere to publish them)


class Metrics:
    """All functions' counters, by function name, and the rules' counters, by index."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionStats] = {}
        self.rules: dict[int, RuleStats] = {}

    def rule(self, index: int, function: str, clientid: str) -> RuleStats:
        """The counters of ``rules[index]``; a reload that gives the index another function starts anew."""
        stats = self.rules.get(index)
        if stats is None or stats.function != function or stats.clientid != clientid:
            stats = self.rules[index] = RuleStats(index, function, clientid)
        return stats

    def function(self, name: str) -> FunctionStats:
        """The counters of ``name``, created on first use."""
        stats = self.functions.get(name)
        if stats is None:
            stats = self.functions[name] = FunctionStats(name)
        return stats

    def snapshot(self) -> list[dict[str, float | int | str]]:
        return [stats.snapshot() for stats in self.functions.values()]

    async def log_status(self, interval: float | Callable[[], float]) -> None:
        """Log one status line per function at info every ``interval`` seconds (``logger.status``).

        ``interval`` may be a callable, read before each wait (a reload may change it); 0 logs nothing.
        """
        while True:
            seconds = interval() if callable(interval) else interval
            await asyncio.sleep(seconds or STATUS_OFF_POLL)
            if seconds and (interval() if callable(interval) else interval):
                self.log_once()

    def log_once(self) -> None:
        """One status line per function, its counters as ``key=value`` (and as fields in JSON lines)."""
        for line in self.snapshot():
            log.info("status %s", " ".join(f"{key}={value}" for key, value in line.items()),
                     extra={"function": line["function"], "status": line})
