"""How deep a sequential runtime's queue may grow, and which instance a call goes to (pure logic)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from edgefn.manager.lending import PIPELINE_MAX, PIPELINE_STALE, PIPELINE_WAIT, depth, pick

pytestmark = pytest.mark.timeout(10)


@dataclass
class FakeInstance:
    """What lending reads of an instance."""

    in_flight: int = 0
    pace: float = 0.0
    ready: bool = True
    pipelines: bool = True
    last_used: float = field(default_factory=time.monotonic)


@pytest.mark.parametrize(("pace", "expected"), [
    (0.0, PIPELINE_MAX),  # not measured yet, or far faster than the wait: the cap
    (PIPELINE_WAIT / 100, PIPELINE_MAX),
    (0.001, 25),  # 1 ms a call: what runs in 25 ms
    (0.010, 2),
    (1.0, 1),  # slow: still one queued, so the runtime never idles between calls
])
def test_the_queue_is_as_deep_as_the_runtime_runs_in_the_wait(pace: float, expected: int) -> None:
    assert depth(FakeInstance(pace=pace)) == expected  # type: ignore[arg-type]


def test_a_call_goes_to_the_least_busy_instance_and_queues_only_when_pipelined() -> None:
    busy, busier = FakeInstance(in_flight=1), FakeInstance(in_flight=3)
    assert pick([busier, busy], concurrency=1) is None  # every slot taken
    assert pick([busier, busy], concurrency=1, pipelined=True) is busy  # type: ignore[list-item]


def test_nothing_queues_behind_an_instance_that_has_not_answered_lately_or_is_not_ready() -> None:
    stale = FakeInstance(in_flight=1, last_used=time.monotonic() - PIPELINE_STALE - 1)
    starting = FakeInstance(ready=False)
    concurrent = FakeInstance(in_flight=1, pipelines=False)
    assert pick([stale, starting, concurrent], concurrency=1, pipelined=True) is None  # type: ignore[list-item]
