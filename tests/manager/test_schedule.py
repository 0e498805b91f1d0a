"""When scheduled rules fire: every frequency, across DST in three zones, leap days, month ends."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from itertools import takewhile
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefn.manager.schedule import Cron, Daily, Every, Hourly, Minutely, Once, Weekly

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")  # 2026: 02:00→03:00 on Mar 29, 03:00→02:00 on Oct 25
NEW_YORK = ZoneInfo("America/New_York")  # 2026: 02:00→03:00 on Mar 8, 02:00→01:00 on Nov 1
ADELAIDE = ZoneInfo("Australia/Adelaide")  # +09:30/+10:30; 2026: 03:00→02:00 on Apr 5, 02:00→03:00 on Oct 4


def fires(schedule, after: datetime, count: int, anchor: datetime | None = None) -> list[datetime]:
    out = []
    for _ in range(count):
        fire = schedule.next_fire(after, anchor)
        assert fire is not None
        out.append(fire)
        after = fire
    return out


def walls(moments: list[datetime]) -> list[str]:
    return [f"{moment:%Y-%m-%d %H:%M%z}" for moment in moments]


# -- the zones' DST changes, as the tests below assume them ------------------------------


def test_the_zones_change_offset_where_the_tests_assume() -> None:
    assert datetime(2026, 3, 29, 1, 59, tzinfo=BERLIN).utcoffset() == timedelta(hours=1)
    assert datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN).utcoffset() == timedelta(hours=2)
    assert datetime(2026, 3, 8, 3, 0, tzinfo=NEW_YORK).utcoffset() == timedelta(hours=-4)
    assert datetime(2026, 4, 5, 1, 0, tzinfo=ADELAIDE).utcoffset() == timedelta(hours=10, minutes=30)
    assert datetime(2026, 4, 5, 4, 0, tzinfo=ADELAIDE).utcoffset() == timedelta(hours=9, minutes=30)
    assert datetime(2026, 10, 4, 3, 0, tzinfo=ADELAIDE).utcoffset() == timedelta(hours=10, minutes=30)


# -- daily ---------------------------------------------------------------------------


def test_daily_fires_at_its_wall_time_every_day_in_its_zone() -> None:
    daily = Daily(at=time(14, 30), time_zone="Europe/Berlin")
    assert walls(fires(daily, datetime(2026, 1, 10, tzinfo=UTC), 3)) == [
        "2026-01-10 14:30+0100", "2026-01-11 14:30+0100", "2026-01-12 14:30+0100"]


def test_daily_time_inside_a_dst_gap_fires_the_gap_length_later() -> None:
    daily = Daily(at=time(2, 30), time_zone="Europe/Berlin")
    assert walls(fires(daily, datetime(2026, 3, 28, 12, tzinfo=BERLIN), 3)) == [
        "2026-03-29 03:30+0200", "2026-03-30 02:30+0200", "2026-03-31 02:30+0200"]


def test_daily_time_in_a_gap_still_fires_when_asked_just_after_the_gap() -> None:
    daily = Daily(at=time(2, 30), time_zone="Europe/Berlin")
    fire = daily.next_fire(datetime(2026, 3, 29, 3, 5, tzinfo=BERLIN))
    assert walls([fire]) == ["2026-03-29 03:30+0200"]


def test_daily_time_that_occurs_twice_fires_once_at_its_first_occurrence() -> None:
    daily = Daily(at=time(2, 30), time_zone="Europe/Berlin")
    first, second = fires(daily, datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2)
    assert walls([first, second]) == ["2026-10-25 02:30+0200", "2026-10-26 02:30+0100"]
    # Asked during the second 02:30 (the hour repeated), it is already past.
    repeated = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1)
    assert daily.next_fire(repeated) == second


def test_daily_in_new_york_across_both_changes() -> None:
    daily = Daily(at=time(1, 30), time_zone="America/New_York")
    assert walls(fires(daily, datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), 2)) == [
        "2026-11-01 01:30-0400", "2026-11-02 01:30-0500"]
    gap = Daily(at=time(2, 15), time_zone="America/New_York")
    assert walls(fires(gap, datetime(2026, 3, 7, 12, tzinfo=NEW_YORK), 2)) == [
        "2026-03-08 03:15-0400", "2026-03-09 02:15-0400"]


def test_daily_in_adelaide_with_its_half_hour_offset_across_both_changes() -> None:
    daily = Daily(at=time(2, 30), time_zone="Australia/Adelaide")
    assert walls(fires(daily, datetime(2026, 4, 4, 12, tzinfo=ADELAIDE), 2)) == [
        "2026-04-05 02:30+1030", "2026-04-06 02:30+0930"]
    assert walls(fires(daily, datetime(2026, 10, 3, 12, tzinfo=ADELAIDE), 2)) == [
        "2026-10-04 03:30+1030", "2026-10-05 02:30+1030"]


def test_daily_crosses_a_leap_day_and_a_year_end() -> None:
    daily = Daily(at=time(23, 30), time_zone="UTC")
    assert walls(fires(daily, datetime(2028, 2, 28, tzinfo=UTC), 3)) == [
        "2028-02-28 23:30+0000", "2028-02-29 23:30+0000", "2028-03-01 23:30+0000"]
    assert walls(fires(daily, datetime(2026, 12, 31, 23, 30, tzinfo=UTC), 1)) == ["2027-01-01 23:30+0000"]


# -- minutely and hourly -------------------------------------------------------------


def test_minutely_fires_on_minutes_that_are_multiples_of_its_minute() -> None:
    minutely = Minutely(minute=20, time_zone="UTC")
    assert walls(fires(minutely, datetime(2026, 1, 1, 10, 5, tzinfo=UTC), 4)) == [
        "2026-01-01 10:20+0000", "2026-01-01 10:40+0000", "2026-01-01 11:00+0000", "2026-01-01 11:20+0000"]


def test_minutely_across_a_gap_fires_each_instant_once() -> None:
    minutely = Minutely(minute=30, time_zone="Europe/Berlin")
    got = fires(minutely, datetime(2026, 3, 29, 1, 10, tzinfo=BERLIN), 4)
    assert walls(got) == ["2026-03-29 01:30+0100", "2026-03-29 03:00+0200",
                          "2026-03-29 03:30+0200", "2026-03-29 04:00+0200"]


def test_minutely_in_a_repeated_hour_fires_only_its_first_pass() -> None:
    minutely = Minutely(minute=30, time_zone="America/New_York")
    got = fires(minutely, datetime(2026, 11, 1, 0, 45, tzinfo=NEW_YORK), 3)
    assert [fire.astimezone(UTC).strftime("%H:%M") for fire in got] == ["05:00", "05:30", "07:00"]


def test_minutely_in_adelaide_keeps_local_minutes() -> None:
    minutely = Minutely(minute=15, time_zone="Australia/Adelaide")
    got = fires(minutely, datetime(2026, 10, 4, 1, 50, tzinfo=ADELAIDE), 3)
    assert walls(got) == ["2026-10-04 03:00+1030", "2026-10-04 03:15+1030", "2026-10-04 03:30+1030"]


def test_hourly_fires_at_minute_zero_of_hours_that_are_multiples_of_its_hour() -> None:
    hourly = Hourly(hour=6, time_zone="Europe/Berlin")
    assert walls(fires(hourly, datetime(2026, 3, 28, 19, tzinfo=BERLIN), 4)) == [
        "2026-03-29 00:00+0100", "2026-03-29 06:00+0200", "2026-03-29 12:00+0200", "2026-03-29 18:00+0200"]


def test_hourly_in_a_gap_and_a_repeat() -> None:
    hourly = Hourly(hour=1, time_zone="Australia/Adelaide")
    spring = fires(hourly, datetime(2026, 10, 4, 0, 30, tzinfo=ADELAIDE), 3)
    assert walls(spring) == ["2026-10-04 01:00+0930", "2026-10-04 03:00+1030", "2026-10-04 04:00+1030"]
    autumn = fires(hourly, datetime(2026, 4, 5, 1, 30, tzinfo=ADELAIDE), 3)
    assert walls(autumn) == ["2026-04-05 02:00+1030", "2026-04-05 03:00+0930", "2026-04-05 04:00+0930"]


# -- weekly, once, cron, every ---------------------------------------------------------


def test_weekly_fires_on_its_days_at_its_time() -> None:
    weekly = Weekly(days=("MON", "FRI"), at=time(8, 0), time_zone="Europe/Berlin")
    assert walls(fires(weekly, datetime(2026, 3, 25, tzinfo=BERLIN), 4)) == [
        "2026-03-27 08:00+0100", "2026-03-30 08:00+0200", "2026-04-03 08:00+0200", "2026-04-06 08:00+0200"]


def test_weekly_on_a_gap_sunday() -> None:
    weekly = Weekly(days=("SUN",), at=time(2, 30), time_zone="America/New_York")
    assert walls(fires(weekly, datetime(2026, 3, 1, 12, tzinfo=NEW_YORK), 2)) == [
        "2026-03-08 03:30-0400", "2026-03-15 02:30-0400"]


def test_once_fires_once_and_never_again() -> None:
    once = Once(at=datetime(2026, 12, 24, 18, 0), time_zone="Australia/Adelaide")
    fire = once.next_fire(datetime(2026, 1, 1, tzinfo=UTC))
    assert walls([fire]) == ["2026-12-24 18:00+1030"]
    assert once.next_fire(fire) is None


def test_once_in_a_gap_fires_after_it() -> None:
    once = Once(at=datetime(2026, 3, 29, 2, 30), time_zone="Europe/Berlin")
    assert walls([once.next_fire(datetime(2026, 1, 1, tzinfo=UTC))]) == ["2026-03-29 03:30+0200"]


def test_cron_month_ends_and_leap_days() -> None:
    last = Cron(cron="0 12 31 * *", time_zone="UTC")  # months without a 31st are skipped
    assert walls(fires(last, datetime(2026, 3, 31, 13, tzinfo=UTC), 3)) == [
        "2026-05-31 12:00+0000", "2026-07-31 12:00+0000", "2026-08-31 12:00+0000"]
    leap = Cron(cron="0 0 29 2 *", time_zone="Europe/Berlin")
    assert walls(fires(leap, datetime(2026, 1, 1, tzinfo=UTC), 2)) == [
        "2028-02-29 00:00+0100", "2032-02-29 00:00+0100"]


def test_cron_fixed_time_in_a_gap_fires_the_gap_length_later_like_the_other_kinds() -> None:
    cron = Cron(cron="30 2 * * *", time_zone="Europe/Berlin")
    assert walls([cron.next_fire(datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN))]) == ["2026-03-29 03:30+0200"]


def test_every_counts_from_its_anchor_not_from_the_last_fire() -> None:
    every = Every(seconds=30)
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    late_wake = datetime(2026, 1, 1, 0, 1, 7, 400000, tzinfo=UTC)
    assert every.next_fire(late_wake, anchor) == datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)
    assert every.next_fire(anchor, anchor) == datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert Every(seconds=0.25).next_fire(anchor) == anchor + timedelta(milliseconds=250)


def test_every_ignores_dst() -> None:
    every = Every(seconds=3600, time_zone="Europe/Berlin")
    anchor = datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)
    got = fires(every, anchor, 3, anchor)
    assert [fire - anchor for fire in got] == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=3)]


@pytest.mark.parametrize("build, message", [
    (lambda: Minutely(minute=60), "between 1 and 59"),
    (lambda: Minutely(minute=0), "between 1 and 59"),
    (lambda: Hourly(hour=24), "between 1 and 23"),
    (lambda: Weekly(days=("MON", "FUN"), at=time(8, 0)), "unknown day 'FUN'"),
    (lambda: Weekly(days=(), at=time(8, 0)), "at least one day"),
    (lambda: Daily(at=time(8, 0), time_zone="Mars/Olympus"), "unknown time zone"),
    (lambda: Cron(cron="* * * *"), "5 fields"),
    (lambda: Cron(cron="0 0 31 2 *"), "bad cron expression"),
    (lambda: Every(seconds=0), "positive duration"),
    (lambda: Once(at=datetime(2026, 1, 1, tzinfo=UTC)), "without an offset"),
])
def test_a_wrong_schedule_cannot_be_built(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# -- properties ------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Adelaide", "Asia/Kolkata",
         "Australia/Lord_Howe", "America/Sao_Paulo"]
clocks = st.builds(time, st.integers(0, 23), st.integers(0, 59))
zones = st.sampled_from(ZONES)
calendar_schedules = st.one_of(
    st.builds(Minutely, minute=st.integers(1, 59), time_zone=zones),
    st.builds(Hourly, hour=st.integers(1, 23), time_zone=zones),
    st.builds(Daily, at=clocks, time_zone=zones),
    st.builds(Weekly, days=st.lists(st.sampled_from(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]),
                                    min_size=1, max_size=7, unique=True).map(tuple),
              at=clocks, time_zone=zones),
    st.builds(Cron, cron=st.sampled_from(["*/7 * * * *", "30 2 * * *", "0 0 L * *", "15 1,2,3 * * 0",
                                          "0 12 29 2 *", "45 23 * * MON-FRI"]), time_zone=zones),
)
instants = st.datetimes(datetime(2020, 1, 1), datetime(2035, 12, 31)).map(lambda moment: moment.replace(tzinfo=UTC))


def _is_candidate_landing(schedule, fire: datetime) -> bool:
    """``fire`` is where one of the schedule's wall times lands (itself, or shifted out of a gap)."""
    tz = ZoneInfo(schedule.time_zone)
    wall = fire.astimezone(tz).replace(tzinfo=None)
    nearby = takewhile(lambda candidate: candidate <= wall, schedule.walls(wall - timedelta(hours=3)))
    instant = fire.astimezone(UTC)
    return any(candidate.replace(tzinfo=tz, fold=0).astimezone(UTC) == instant for candidate in nearby)


@settings(max_examples=150, deadline=None)
@given(schedule=calendar_schedules, after=instants)
def test_fires_strictly_increase_and_each_lands_on_a_real_wall_time(schedule, after) -> None:
    tz = ZoneInfo(schedule.time_zone)
    previous = after
    for fire in fires(schedule, after, 6):
        assert fire > previous
        local = fire.astimezone(tz)
        # A real wall time: it exists in the zone and names this very instant.
        # (Compared in UTC: Python never finds an ambiguous wall time equal across zones.)
        assert local.replace(tzinfo=None).replace(tzinfo=tz, fold=local.fold).astimezone(UTC) == fire.astimezone(UTC)
        assert _is_candidate_landing(schedule, fire)
        previous = fire


@settings(max_examples=100, deadline=None)
@given(seconds=st.floats(0.001, 90_000), anchor=instants, offset=st.floats(0, 10_000_000))
def test_every_fires_on_its_grid_strictly_after(seconds, anchor, offset) -> None:
    every = Every(seconds=seconds)
    after = anchor + timedelta(seconds=offset)
    fire = every.next_fire(after, anchor)
    step = timedelta(microseconds=round(seconds * 1_000_000))
    assert after < fire <= max(after, anchor) + step
    assert (fire - anchor) % step == timedelta(0)
