"""Per-function counters: scheduled fires and late fires, per rule."""

from __future__ import annotations

from edgefn.manager.metrics import Metrics


def test_fires_and_late_fires_are_counted_per_rule_and_in_total() -> None:
    stats = Metrics().function("fetch")
    stats.fired(0, late=False)
    stats.fired(0, late=True)
    stats.fired(3, late=False)
    snapshot = stats.snapshot()
    assert (snapshot["fires"], snapshot["late_fires"]) == (3, 1)
    assert (snapshot["rules[0].fires"], snapshot["rules[0].late_fires"], snapshot["rules[3].fires"]) == (2, 1, 1)
    assert "rules[3].late_fires" not in snapshot


def test_a_function_without_schedules_shows_zero_fires() -> None:
    snapshot = Metrics().function("f").snapshot()
    assert (snapshot["fires"], snapshot["late_fires"]) == (0, 0)
