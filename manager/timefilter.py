"""Time windows for scheduled calls: Mainflux downlinks' ``time_filter``.

A :class:`TimeFilter` adds two keys to a scheduled call's event: the start and
the end of a window of ``value`` × ``interval`` that ends at the call's nominal
fire time (or, with ``forecast``, starts at it). The times are rendered in one
of the named formats Mainflux accepts (Go's layout names): the unix formats as
integers, every other one as a string in the schedule's time zone.

The window is computed from the nominal fire time, never from the moment the
timer woke, so a late wake-up does not shift the data a function asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = ["FORMATS", "INTERVALS", "TimeFilter", "render", "rfc3339"]

INTERVALS: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}

# Go's names, in English whatever the machine's locale (Go ignores the locale too).
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (moment - _EPOCH) // _MICROSECOND


def _day(moment: datetime) -> str:
    return _DAYS[moment.weekday()][:3]


def _month(moment: datetime) -> str:
    return _MONTHS[moment.month - 1]


def _zone_name(moment: datetime) -> str:
    """Go's ``MST``: the zone's abbreviation (``CET``, ``ACDT``, ``UTC``)."""
    return moment.tzname() or _numeric_offset(moment, colon=False)


def _numeric_offset(moment: datetime, *, colon: bool) -> str:
    """Go's ``-0700`` (or ``-07:00`` with ``colon``)."""
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return f"{sign}{minutes // 60:02d}{':' if colon else ''}{minutes % 60:02d}"


def _z_offset(moment: datetime) -> str:
    """Go's ``Z07:00``: ``Z`` for UTC itself, else ``+05:30``."""
    return "Z" if moment.utcoffset() == timedelta(0) else _numeric_offset(moment, colon=True)


def _fraction(moment: datetime, digits: int) -> str:
    """Go's ``.000`` (``digits`` fixed digits; nanoseconds beyond microseconds are zero)."""
    return "." + f"{moment.microsecond:06d}000"[:digits]


def _nano(moment: datetime) -> str:
    """Go's ``.999999999``: the fraction without trailing zeros, nothing when whole."""
    digits = f"{moment.microsecond:06d}".rstrip("0")
    return f".{digits}" if digits else ""


def _clock(moment: datetime) -> str:
    return f"{moment:%H:%M:%S}"


def _stamp(moment: datetime) -> str:
    """Go's ``Jan _2 15:04:05`` (``_2``: the day padded with a space)."""
    return f"{_month(moment)} {moment.day:>2} {_clock(moment)}"


def rfc3339(moment: datetime) -> str:
    """RFC 3339 with the fraction only when there is one (Go's RFC3339Nano)."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}{_nano(moment)}{_z_offset(moment)}"


_Textual = Callable[[datetime], str]

_TEXTUAL: dict[str, _Textual] = {
    "rfc3339": lambda m: f"{m:%Y-%m-%dT%H:%M:%S}{_z_offset(m)}",
    "rfc3339nano": rfc3339,
    "iso8601": lambda m: f"{m:%Y-%m-%dT%H:%M:%S}",
    "compactiso8601": lambda m: f"{m:%Y%m%d%H%M}",
    "datetime": lambda m: f"{m:%Y-%m-%d %H:%M:%S}",
    "rfc822": lambda m: f"{m.day:02d} {_month(m)} {m:%y %H:%M} {_zone_name(m)}",
    "rfc822z": lambda m: f"{m.day:02d} {_month(m)} {m:%y %H:%M} {_numeric_offset(m, colon=False)}",
    "rfc850": lambda m: f"{_DAYS[m.weekday()]}, {m.day:02d}-{_month(m)}-{m:%y} {_clock(m)} {_zone_name(m)}",
    "rfc1123": lambda m: f"{_day(m)}, {m.day:02d} {_month(m)} {m.year:04d} {_clock(m)} {_zone_name(m)}",
    "rfc1123z": lambda m: f"{_day(m)}, {m.day:02d} {_month(m)} {m.year:04d} {_clock(m)} "
                          f"{_numeric_offset(m, colon=False)}",
    "ansic": lambda m: f"{_day(m)} {_stamp(m)} {m.year:04d}",
    "unixdate": lambda m: f"{_day(m)} {_stamp(m)} {_zone_name(m)} {m.year:04d}",
    "rubydate": lambda m: f"{_day(m)} {_month(m)} {m.day:02d} {_clock(m)} "
                          f"{_numeric_offset(m, colon=False)} {m.year:04d}",
    "stamp": _stamp,
    "stampmilli": lambda m: _stamp(m) + _fraction(m, 3),
    "stampmicro": lambda m: _stamp(m) + _fraction(m, 6),
    "stampnano": lambda m: _stamp(m) + _fraction(m, 9),
}

_UNIX: dict[str, Callable[[int], int]] = {
    "unix": lambda micros: micros // 1_000_000,
    "unix_ms": lambda micros: micros // 1_000,
    "unix_us": lambda micros: micros,
    "unix_ns": lambda micros: micros * 1_000,
}

FORMATS: tuple[str, ...] = (*_UNIX, *_TEXTUAL)


def render(moment: datetime, format: str) -> int | str:
    """``moment`` (aware, in the schedule's zone) in the named format."""
    if format in _UNIX:
        return _UNIX[format](_micros(moment))
    return _TEXTUAL[format](moment)


@dataclass(frozen=True)
class TimeFilter:
    """``start_param``/``end_param`` keys bounding ``value`` × ``interval`` around a fire."""

    start_param: str
    end_param: str
    format: str = "rfc3339"
    interval: str = "hour"  # minute | hour | day
    value: int = 1
    forecast: bool = False  # the window starts at the fire time instead of ending there

    def __post_init__(self) -> None:
        if not self.start_param or not self.end_param:
            raise ValueError("start_param and end_param must not be empty")
        if self.start_param == self.end_param:
            raise ValueError(f"start_param and end_param must differ, both are {self.start_param!r}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; expected one of {', '.join(FORMATS)}")
        if self.interval not in INTERVALS:
            raise ValueError(f"unknown interval {self.interval!r}; expected minute, hour or day")
        if self.value < 1:
            raise ValueError(f"value must be at least 1, got {self.value}")

    @property
    def span(self) -> timedelta:
        return INTERVALS[self.interval] * self.value

    def window(self, nominal: datetime) -> tuple[datetime, datetime]:
        """The window's start and end for a fire at ``nominal`` (aware), in ``nominal``'s zone.

        Computed in UTC: arithmetic on aware datetimes is wall-clock arithmetic in
        Python, which would make "the last hour" across a DST change two hours or none.
        """
        zone, instant = nominal.tzinfo, nominal.astimezone(timezone.utc)
        start, end = (instant, instant + self.span) if self.forecast else (instant - self.span, instant)
        return start.astimezone(zone), end.astimezone(zone)

    def params(self, nominal: datetime) -> dict[str, int | str]:
        """The two event keys for a fire at ``nominal`` (aware, in the zone to render in)."""
        start, end = self.window(nominal)
        return {self.start_param: render(start, self.format), self.end_param: render(end, self.format)}
