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


def test_a_call_lands_in_one_duration_bucket_and_failures_count_by_error_type() -> None:
    from edgefn.manager.metrics import DURATION_BUCKETS

    stats = Metrics().function("f")
    stats.observe(0.0005, False)
    stats.observe(0.001, "Runtime.Timeout")  # on a bound: counted in that bucket (le is inclusive)
    stats.observe(999.0, True)
    assert stats.buckets[0] == 2 and stats.buckets[len(DURATION_BUCKETS)] == 1
    assert (stats.calls, stats.errors) == (3, 2)
    assert stats.failures == {"Runtime.Timeout": 1, "Unknown": 1}


def test_a_rules_counters_start_again_when_its_index_names_another_function() -> None:
    metrics = Metrics()
    first = metrics.rule(0, "f", "edgefn")
    first.inputs += 1
    assert metrics.rule(0, "f", "edgefn") is first
    assert metrics.rule(0, "g", "edgefn").inputs == 0


def test_the_status_line_is_logged_at_info_with_the_counters_as_fields(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    metrics = Metrics()
    metrics.function("f").calls = 3
    with caplog.at_level(logging.INFO, logger="edgefn.metrics"):
        metrics.log_once()
    record = caplog.records[0]
    assert record.levelno == logging.INFO and "function=f" in record.getMessage() and "calls=3" in record.getMessage()
    assert record.function == "f" and record.status["calls"] == 3  # type: ignore[attr-defined]
