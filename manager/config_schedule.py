"""Reading a rule's ``schedule``, ``time_filter`` and ``payload`` (a scheduled rule).

A rule is triggered by ``subscribe`` or by ``schedule``, never both. The
schedule's keys are Mainflux downlinks' (``frequency`` with ``date_time``,
``minute``, ``hour``, ``day_time``, ``week``; ``time_zone``) plus two of our
own in place of ``frequency``: ``every: <duration>`` and ``cron: "<5 fields>"``.
Every mistake is recorded with its YAML path and line; the dataclasses
themselves (:mod:`edgefn.manager.schedule`, :mod:`edgefn.manager.timefilter`)
check the values once more, so they can be trusted wherever they are built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timezone

import orjson
import yaml

from .config_keys import keys
from .schedule import DAYS, Cron, Daily, Every, Hourly, Minutely, Once, Schedule, Weekly, zone
from .timefilter import FORMATS, INTERVALS, TimeFilter
from .yamldoc import Section, Value, expand, is_null

__all__ = ["Scheduled", "read_scheduled"]

FREQUENCIES = ("once", "minutely", "hourly", "daily", "weekly")
_SCHEDULE_KEYS = keys("rules[].schedule")
_FILTER_KEYS = keys("rules[].time_filter")
# Which keys each frequency uses; the others are Mainflux's "ignored otherwise" (a warning here).
_USES = {"once": "date_time", "minutely": "minute", "hourly": "hour", "daily": "day_time", "weekly": "week"}
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_DATE_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T]([01]?\d|2[0-3]):([0-5]\d)")
_SCHEDULE_EXAMPLE = '{frequency: daily, day_time: "14:30", time_zone: Europe/Berlin}'


@dataclass(frozen=True)
class Scheduled:
    """What a scheduled rule adds to a rule: when, the time window, the event's base (JSON)."""

    schedule: Schedule
    time_filter: TimeFilter | None
    payload: bytes  # JSON


def read_scheduled(rule: Section, now: datetime | None = None) -> Scheduled | None:
    """The rule's schedule part, or None (not scheduled, or wrong: already reported).

    Also reports a rule with both ``subscribe`` and ``schedule``, or neither.
    ``now`` (default: the clock) decides whether a ``once`` is in the past.
    """
    value, subscribe = rule.get("schedule"), rule.get("subscribe")
    if value is not None and subscribe is not None:
        value.error("a rule has either subscribe or schedule, not both; remove one")
    if value is None and subscribe is None:
        rule.value.error("missing subscribe or schedule; expected subscribe: {topic: a/b} "
                         f"or schedule: {_SCHEDULE_EXAMPLE}")
    if value is None:
        for key in ("time_filter", "payload"):
            if (extra := rule.get(key)) is not None:
                extra.error("only a scheduled rule has a time_filter or payload; add a schedule or remove it")
        return None
    schedule = _schedule(value, now or datetime.now(timezone.utc))
    time_filter = _time_filter(rule.get("time_filter"))
    payload = _payload(rule.get("payload"), filtered=rule.get("time_filter") is not None)
    if schedule is None or payload is None:
        return None
    return Scheduled(schedule, time_filter, payload)


# -- schedule ------------------------------------------------------------------------------


def _schedule(value: Value, now: datetime) -> Schedule | None:
    section = value.section(_SCHEDULE_KEYS, example=_SCHEDULE_EXAMPLE)
    if section is None:
        return None
    tz = _zone(section.get("time_zone"))
    kinds = [key for key in ("frequency", "every", "cron") if section.get(key) is not None]
    if len(kinds) != 1:
        what = "one of frequency, every or cron"
        if kinds:
            section.entries[kinds[1]].error(f"a schedule has {what}, not several")
        else:
            value.error(f"missing; expected {what}, like {_SCHEDULE_EXAMPLE}")
        return None
    kind = kinds[0]
    if kind != "frequency":
        for key in _USES.values():
            if (extra := section.get(key)) is not None:
                extra.warn(f"used only with frequency {_used_by(key)}; ignored with {kind}")
    schedule = _kind(section, kind, tz or "UTC", now)  # checked even with a wrong zone: report all
    return None if tz is None else schedule


def _kind(section: Section, kind: str, tz: str, now: datetime) -> Schedule | None:
    if kind == "every":
        seconds = section.entries["every"].duration()
        return None if seconds is None else _build(section.entries["every"], Every, seconds=seconds, time_zone=tz)
    if kind == "cron":
        expression = section.entries["cron"].string()
        return None if expression is None else _build(section.entries["cron"], Cron, cron=expression, time_zone=tz)
    return _frequency(section, tz, now)


def _used_by(key: str) -> str:
    return next(frequency for frequency, used in _USES.items() if used == key)


def _zone(value: Value | None) -> str | None:
    if value is None:
        return "UTC"
    name = value.string()
    if name is None:
        return None
    try:
        zone(name)
    except ValueError as exc:
        value.error(str(exc))
        return None
    return name


def _build(value: Value, kind: type, **fields: object) -> Schedule | None:
    """Build a schedule dataclass; its own check failing is reported at ``value``."""
    try:
        return kind(**fields)  # type: ignore[no-any-return]
    except ValueError as exc:
        value.error(str(exc))
        return None


def _frequency(section: Section, tz: str, now: datetime) -> Schedule | None:
    value = section.entries["frequency"]
    frequency = value.choice(FREQUENCIES)
    if frequency is None:
        return None
    for key in _USES.values():
        if key != _USES[frequency] and (extra := section.get(key)) is not None:
            extra.warn(f"used only with frequency {_used_by(key)}; ignored with {frequency}")
    if frequency == "minutely":
        minute = _optional_int(section, "minute", 1, 59, 1)
        return None if minute is None else Minutely(minute=minute, time_zone=tz)
    if frequency == "hourly":
        hour = _optional_int(section, "hour", 1, 23, 1)
        return None if hour is None else Hourly(hour=hour, time_zone=tz)
    if frequency == "daily":
        at_value = section.require("day_time", 'a time of day "HH:MM", like "14:30"')
        at = _clock(at_value) if at_value is not None else None
        return None if at is None else Daily(at=at, time_zone=tz)
    if frequency == "weekly":
        return _weekly(section, tz)
    return _once(section, tz, now)


def _optional_int(section: Section, key: str, lo: int, hi: int, default: int) -> int | None:
    value = section.get(key)
    return default if value is None else value.integer(lo, hi)


def _clock(value: Value) -> time | None:
    text = value.string()
    if text is None:
        return None
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        value.error(f'expected a time of day "HH:MM" (00:00 to 23:59), got {text!r}')
        return None
    return time(int(match[1]), int(match[2]))


def _weekly(section: Section, tz: str) -> Schedule | None:
    value = section.require("week", '{days: [MON, FRI], time: "08:00"}')
    week = value.section(keys("rules[].schedule.week"), example='{days: [MON, FRI], time: "08:00"}') if value else None
    if week is None:
        return None
    days_value = week.require("days", "a list of days from " + ", ".join(DAYS))
    at_value = week.require("time", 'a time of day "HH:MM"')
    days: list[str] = []
    wrong = False
    for item in days_value.items() if days_value is not None else []:
        name = (item.string() or "").strip().upper()
        if name not in DAYS:
            item.error(f"expected a day from {', '.join(DAYS)}, got {item.node.value!r}")
            wrong = True
        elif name not in days:  # a day named twice still fires once
            days.append(name)
    if days_value is not None and isinstance(days_value.node, yaml.SequenceNode) and not days_value.node.value:
        days_value.error("expected at least one day")
    at = _clock(at_value) if at_value is not None else None
    if at is None or not days or wrong:
        return None
    return Weekly(days=tuple(days), at=at, time_zone=tz)


def _once(section: Section, tz: str, now: datetime) -> Schedule | None:
    value = section.require("date_time", 'a date and time "YYYY-MM-DD HH:MM"')
    text = value.string() if value is not None else None
    if text is None or value is None:
        return None
    match = _DATE_TIME.fullmatch(text.strip())
    try:
        at = datetime(*(int(part) for part in match.groups())) if match else None  # type: ignore[misc]
    except ValueError:  # 2026-02-30
        at = None
    if at is None:
        value.error(f'expected a date and time "YYYY-MM-DD HH:MM" (a real day), got {text!r}')
        return None
    once = Once(at=at, time_zone=tz)
    if once.next_fire(now) is None:
        value.warn(f"{text} {tz} is in the past; this rule never fires")
    return once


# -- time filter and payload ------------------------------------------------------------


def _time_filter(value: Value | None) -> TimeFilter | None:
    section = value.section(_FILTER_KEYS, example="{start_param: from, end_param: to, format: rfc3339, "
                                                  "interval: hour, value: 1}") if value is not None else None
    if section is None:
        return None
    start = section.require("start_param", "the event key for the window's start, like from")
    end = section.require("end_param", "the event key for the window's end, like to")
    forecast = section.get("forecast")
    fields = {
        "start_param": start.string() if start is not None else None,
        "end_param": end.string() if end is not None else None,
        "format": _lower_choice(section.get("format"), FORMATS, "rfc3339"),
        "interval": _lower_choice(section.get("interval"), tuple(INTERVALS), "hour"),
        "value": _optional_int(section, "value", 1, 1_000_000, 1),
        "forecast": forecast.boolean() if forecast is not None else False,
    }
    if any(field is None for field in fields.values()):
        return None
    if fields["start_param"] == fields["end_param"] and end is not None:
        end.error(f"must differ from start_param (both are {fields['end_param']!r})")
        return None
    return TimeFilter(**fields)  # type: ignore[arg-type]


def _lower_choice(value: Value | None, choices: tuple[str, ...], default: str) -> str | None:
    """Mainflux's names are case-insensitive (RFC3339 is rfc3339)."""
    return default if value is None else value.choice(choices)


def _payload(value: Value | None, filtered: bool) -> bytes | None:
    """The event's base as JSON; with a time filter it must be a mapping (keys are added to it)."""
    if value is None:
        return b"{}"
    if filtered and not isinstance(value.node, yaml.MappingNode):
        value.error("a time_filter adds keys to the payload, so the payload must be a mapping, like {url: ...}")
        return None
    data = _plain(value)
    return None if data is _WRONG else orjson.dumps(data)


_WRONG = object()
_SCALARS = yaml.SafeLoader("")  # only its constructors: YAML's own int/float/bool/null rules


def _plain(value: Value) -> object:
    """A YAML value as plain JSON data; strings get ``${VAR}`` expanded like every other value."""
    node = value.node
    if isinstance(node, yaml.MappingNode):
        section = value.section(())
        if section is None:
            return _WRONG
        items = {key: _plain(entry) for key, entry in section.entries.items()}
        return _WRONG if _WRONG in items.values() else items
    if isinstance(node, yaml.SequenceNode):
        items = [_plain(item) for item in value.items()]
        return _WRONG if _WRONG in items else items
    if is_null(node):
        return None
    if node.style is None and node.tag.endswith((":int", ":float", ":bool")):
        return _SCALARS.construct_object(node)
    text = expand(node.value, value.doc.environ, value.error)
    return _WRONG if text is None else text
