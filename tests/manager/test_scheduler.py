"""The scheduler: fires what is due from the wall clock, follows reloads, builds the call."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson

from edgefn.manager.config import RuleConfig, TopicConfig
from edgefn.manager.schedule import Daily, Every, Minutely
from edgefn.manager.scheduler import MAX_SLEEP, Scheduler, event, scheduled_call
from edgefn.manager.timefilter import TimeFilter

UTC = timezone.utc
START = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def rule(schedule, index: int = 0, **extra) -> RuleConfig:
    return RuleConfig(None, None, "f", TopicConfig("out", 1), index=index, schedule=schedule, **extra)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now.timestamp()


def recorder() -> tuple[list[tuple[int, datetime, bool]], object]:
    fired: list[tuple[int, datetime, bool]] = []
    return fired, lambda rule, nominal, late: fired.append((rule.index, nominal.astimezone(UTC), late))


def test_nothing_fires_before_its_time_and_the_sleep_is_until_the_next_fire() -> None:
    fired, fire = recorder()
    clock = Clock(START)
    scheduler = Scheduler(fire, clock)
    scheduler.update([rule(Every(seconds=20))])
    assert scheduler._fire_due() == 20.0
    assert fired == []


def test_a_due_fire_runs_once_with_its_nominal_time_and_the_next_is_computed() -> None:
    fired, fire = recorder()
    clock = Clock(START)
    scheduler = Scheduler(fire, clock)
    scheduler.update([rule(Every(seconds=20))])
    clock.now = START + timedelta(seconds=20, milliseconds=5)
    assert abs(scheduler._fire_due() - 19.995) < 1e-6
    assert fired == [(0, START + timedelta(seconds=20), False)]
    assert scheduler._fire_due() > 0 and len(fired) == 1


def test_a_wake_more_than_a_second_late_is_a_late_fire() -> None:
    fired, fire = recorder()
    clock = Clock(START)
    scheduler = Scheduler(fire, clock)
    scheduler.update([rule(Every(seconds=20))])
    clock.now = START + timedelta(seconds=21.5)
    scheduler._fire_due()
    assert fired == [(0, START + timedelta(seconds=20), True)]


def test_a_clock_jumping_forward_fires_once_and_replays_nothing() -> None:
    fired, fire = recorder()
    clock = Clock(START)
    scheduler = Scheduler(fire, clock)
    scheduler.update([rule(Minutely(minute=1))])
    clock.now = START + timedelta(hours=5, seconds=10)
    scheduler._fire_due()
    scheduler._fire_due()
    assert len(fired) == 1
    clock.now = START + timedelta(hours=5, minutes=1)
    scheduler._fire_due()
    assert [nominal for _, nominal, _ in fired][1:] == [START + timedelta(hours=5, minutes=1)]


def test_a_clock_set_back_fires_by_the_new_time() -> None:
    fired, fire = recorder()
    clock = Clock(START)
    scheduler = Scheduler(fire, clock)
    scheduler.update([rule(Minutely(minute=1))])
    clock.now = START + timedelta(minutes=1)
    scheduler._fire_due()
    clock.now = START - timedelta(hours=2)
    assert scheduler._fire_due() == 60.0  # the next minute by the new clock, not in two hours
    clock.now = START - timedelta(hours=2) + timedelta(minutes=1)
    scheduler._fire_due()
    assert fired[-1][1] == START - timedelta(hours=2) + timedelta(minutes=1)


def test_a_small_step_back_never_fires_the_same_nominal_time_twice() -> None:
    fired, fire = recorder()
    clock = Clock(START)
    scheduler = Scheduler(fire, clock)
    scheduler.update([rule(Minutely(minute=1))])
    clock.now = START + timedelta(minutes=1, milliseconds=2)
    scheduler._fire_due()
    clock.now = START + timedelta(minutes=1) - timedelta(milliseconds=50)  # NTP steps back a little
    scheduler._fire_due()
    clock.now = START + timedelta(minutes=1, milliseconds=10)
    scheduler._fire_due()
    assert len(fired) == 1


def test_a_reload_keeps_an_unchanged_rules_rhythm_restarts_a_changed_one_and_drops_a_removed_one() -> None:
    fired, fire = recorder()
    clock = Clock(START)
    scheduler = Scheduler(fire, clock)
    kept, changed, removed = rule(Every(seconds=30), 0), rule(Every(seconds=45), 1), rule(Every(seconds=50), 2)
    scheduler.update([kept, changed, removed])
    clock.now = START + timedelta(seconds=10)
    # The unchanged rule moved in the file (another index): it is still the same rule.
    scheduler.update([replace(kept, index=5), replace(changed, schedule=Every(seconds=40))])
    assert sorted(entry.rule.index for entry in scheduler._entries.values()) == [1, 5]
    assert scheduler._fire_due() == 20.0  # kept: START+30; changed starts afresh: START+10+40
    clock.now = START + timedelta(seconds=50)
    scheduler._fire_due()
    assert fired == [(5, START + timedelta(seconds=30), True), (1, START + timedelta(seconds=50), False)]


def test_a_schedule_with_nothing_left_sleeps_the_longest_sleep() -> None:
    fired, fire = recorder()
    scheduler = Scheduler(fire, Clock(START))
    scheduler.update([])
    assert scheduler._fire_due() == MAX_SLEEP


def test_a_failing_fire_does_not_stop_the_other_rules() -> None:
    fired, fire = recorder()

    def flaky(rule, nominal, late):
        if rule.index == 0:
            raise RuntimeError("boom")
        fire(rule, nominal, late)

    clock = Clock(START)
    scheduler = Scheduler(flaky, clock)
    scheduler.update([rule(Every(seconds=10), 0), rule(Every(seconds=10), 1)])
    clock.now = START + timedelta(seconds=10)
    scheduler._fire_due()
    assert [index for index, _, _ in fired] == [1]


async def test_the_task_sleeps_until_each_fire_and_wakes_for_a_reload() -> None:
    fired: list[datetime] = []
    got = asyncio.Event()

    def fire(rule, nominal, late):
        fired.append(nominal)
        got.set()

    scheduler = Scheduler(fire)
    scheduler.update([rule(Every(seconds=3600))])
    task = asyncio.create_task(scheduler.run(), name="test-scheduler")
    try:
        await asyncio.sleep(0.05)
        assert fired == []
        scheduler.update([rule(Every(seconds=0.2))])  # takes effect at once, not in an hour
        async with asyncio.timeout(5):
            await got.wait()
        got.clear()
        async with asyncio.timeout(5):
            await got.wait()
        step = fired[1] - fired[0]
        assert step == timedelta(seconds=0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_call_carries_the_nominal_time_the_publish_qos_and_the_window() -> None:
    nominal = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    scheduled = rule(Daily(at=time(2, 30), time_zone="Europe/Berlin"),
                     time_filter=TimeFilter("from", "to", "unix", "hour", 1), payload=b'{"url":"http://x"}')
    call = scheduled_call(scheduled, nominal)
    assert (call.topic, call.qos, call.function) == ("", 1, "f")
    assert call.timestamp == int(nominal.timestamp())
    assert call.scheduled_time == "2026-03-29T03:30:00+02:00"
    assert orjson.loads(call.payload) == {"url": "http://x", "from": call.timestamp - 3600, "to": call.timestamp}


def test_without_a_time_filter_the_event_is_the_payload_as_written() -> None:
    assert event(rule(Every(seconds=1), payload=b'"tick"'), START) == b'"tick"'
