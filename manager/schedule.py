"""When a scheduled rule fires: Mainflux downlinks' frequencies, fixed intervals and cron.

Each kind is a frozen dataclass validated when it is built; all answer
:meth:`next_fire` — the first fire strictly after a given instant — computed
from the wall clock each time, never by adding durations to the last fire, so a
clock jump or a suspended machine neither replays nor drifts.

Times are wall-clock times in ``time_zone``. The calendar kinds (``minutely``,
``hourly``, ``daily``, ``weekly``, ``cron``) list candidate wall times with
cronsim, run on naive datetimes so that it does no DST handling of its own, and
each candidate is placed on the time line by one rule (PEP 495's ``fold=0``):

* a wall time that does not exist that day (a DST gap) fires at the same offset
  after the gap: 02:30 in a 02:00→03:00 gap fires at 03:30;
* a wall time that occurs twice (the hour repeated when DST ends) fires once,
  at its first occurrence.

``every`` is a fixed interval counted from an anchor (the moment the manager
took the rule on): fires at ``anchor + k·interval``, whatever the zone says.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = [
    "DAYS", "Cron", "Daily", "Every", "Hourly", "Minutely", "Once", "Schedule", "Weekly", "zone",
]

DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # cron's numbering: SUN = 0
# Longer than any DST shift there is (Troll station's is two hours): how far a
# candidate wall time can sit from the instant it lands on.
_MAX_SHIFT = timedelta(hours=3)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError naming it when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}; expected an IANA name like Europe/Berlin or UTC") from exc


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """Where the wall time ``wall`` lands (UTC): gaps shift forward, repeats take the first."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)


def _exists(wall: datetime, instant: datetime, tz: ZoneInfo) -> bool:
    return instant.astimezone(tz).replace(tzinfo=None) == wall


@dataclass(frozen=True, kw_only=True)
class _Calendar:
    """A schedule whose fires are wall times in ``time_zone``."""

    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.time_zone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)  # ZoneInfo caches its instances: cheap

    def walls(self, start: datetime) -> Iterator[datetime]:
        """Candidate wall times (naive, strictly increasing) at or after ``start``."""
        raise NotImplementedError

    def next_fire(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The first fire strictly after ``after`` (aware), in the zone; None when there is none."""
        tz, after = self.zone, after.astimezone(timezone.utc)
        wall = after.astimezone(tz).replace(tzinfo=None)
        # A DST gap in the last few hours moved wall times that did not exist
        # forward past ``after``: look back by the size of that jump.
        jump = (after.astimezone(tz).utcoffset() or timedelta(0)) - (
            (after - _MAX_SHIFT).astimezone(tz).utcoffset() or timedelta(0))
        best: datetime | None = None
        horizon: datetime | None = None
        for candidate in self.walls(wall - max(jump, timedelta(0))):
            if horizon is not None and candidate > horizon:
                break
            instant = _instant(candidate, tz)
            if instant <= after or (best is not None and instant >= best):
                continue
            if _exists(candidate, instant, tz):
                return instant.astimezone(tz)  # later real wall times land later still
            # A time shifted out of a gap may land after real times that follow
            # it on the wall: look on for as long as the gap can be.
            best, horizon = instant, candidate + _MAX_SHIFT
        return None if best is None else best.astimezone(tz)


@dataclass(frozen=True, kw_only=True)
class _Cronlike(_Calendar):
    """A calendar schedule that is a cron expression underneath."""

    @property
    def expression(self) -> str:
        raise NotImplementedError

    def walls(self, start: datetime) -> Iterator[datetime]:
        # Naive datetimes: cronsim walks the wall clock and leaves DST to _instant.
        try:
            yield from CronSim(self.expression, start.replace(microsecond=0) - _SECOND)
        except StopIteration:  # cronsim gives up after 50 years without a match
            return


def _check_clock(at: time) -> None:
    if at.second or at.microsecond:
        raise ValueError(f"expected a time of day to the minute (HH:MM), got {at}")


@dataclass(frozen=True, kw_only=True)
class Once(_Calendar):
    """One fire at ``at`` (a wall time in the zone)."""

    at: datetime

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.at.tzinfo is not None:
            raise ValueError("a once schedule's date_time is a wall time in time_zone, without an offset")

    def walls(self, start: datetime) -> Iterator[datetime]:
        if self.at >= start:
            yield self.at

    def describe(self) -> str:
        return f"once at {self.at:%Y-%m-%d %H:%M} {self.time_zone}"


@dataclass(frozen=True, kw_only=True)
class Minutely(_Cronlike):
    """Every minute whose number is a multiple of ``minute`` (cron's ``*/M``)."""

    minute: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.minute <= 59:
            raise ValueError(f"minute must be between 1 and 59, got {self.minute}")

    @property
    def expression(self) -> str:
        return f"*/{self.minute} * * * *"

    def describe(self) -> str:
        return f"minutely every {self.minute} min {self.time_zone}"


@dataclass(frozen=True, kw_only=True)
class Hourly(_Cronlike):
    """Minute 0 of every hour whose number is a multiple of ``hour`` (cron's ``0 */H``)."""

    hour: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.hour <= 23:
            raise ValueError(f"hour must be between 1 and 23, got {self.hour}")

    @property
    def expression(self) -> str:
        return f"0 */{self.hour} * * *"

    def describe(self) -> str:
        return f"hourly every {self.hour} h {self.time_zone}"


@dataclass(frozen=True, kw_only=True)
class Daily(_Cronlike):
    """Every day at ``at``."""

    at: time

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_clock(self.at)

    @property
    def expression(self) -> str:
        return f"{self.at.minute} {self.at.hour} * * *"

    def describe(self) -> str:
        return f"daily at {self.at:%H:%M} {self.time_zone}"


@dataclass(frozen=True, kw_only=True)
class Weekly(_Cronlike):
    """On each of ``days`` (names from :data:`DAYS`) at ``at``."""

    days: tuple[str, ...]
    at: time

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_clock(self.at)
        if not self.days:
            raise ValueError("days must name at least one day")
        if unknown := [day for day in self.days if day not in DAYS]:
            raise ValueError(f"unknown day {unknown[0]!r}; expected days from {', '.join(DAYS)}")

    @property
    def expression(self) -> str:
        numbers = sorted({DAYS.index(day) for day in self.days})
        return f"{self.at.minute} {self.at.hour} * * {','.join(map(str, numbers))}"

    def describe(self) -> str:
        return f"weekly on {','.join(self.days)} at {self.at:%H:%M} {self.time_zone}"


@dataclass(frozen=True, kw_only=True)
class Cron(_Cronlike):
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week)."""

    cron: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.cron.split()) != 5:
            raise ValueError(f"expected 5 fields (minute hour day month weekday), got {self.cron!r}")
        try:
            CronSim(self.cron, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"bad cron expression {self.cron!r}: {exc}") from None

    @property
    def expression(self) -> str:
        return self.cron

    def describe(self) -> str:
        return f"cron {self.cron!r} {self.time_zone}"


@dataclass(frozen=True, kw_only=True)
class Every:
    """A fixed interval: fires at ``anchor + k·seconds`` (k ≥ 1); the zone only renders times."""

    seconds: float
    time_zone: str = "UTC"
    _step: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        zone(self.time_zone)
        step = round(self.seconds * 1_000_000)
        if not math.isfinite(self.seconds) or step < 1:
            raise ValueError(f"every must be a positive duration, got {self.seconds}")
        object.__setattr__(self, "_step", step)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def next_fire(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The first ``anchor + k·seconds`` (k ≥ 1) strictly after ``after``; anchor defaults to ``after``."""
        anchor = after if anchor is None else anchor
        elapsed = (after - anchor) // _MICROSECOND
        k = max(1, elapsed // self._step + 1)
        return (anchor + k * self._step * _MICROSECOND).astimezone(self.zone)

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


Schedule = Once | Minutely | Hourly | Daily | Weekly | Cron | Every

