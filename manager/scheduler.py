"""The manager's one timer for every scheduled rule, and what a fire hands a function.

:class:`Scheduler` sleeps until the earliest next fire of its rules, fires what
is due through a callback (the manager runs each fire as its own call) and goes
back to sleep. Every next fire is computed from the wall clock when the timer
wakes, so a clock set forward skips what it jumped over (fires are never
replayed) and a clock set back (by more than a minute) fires by the new time. A sleep lasts at most
:data:`MAX_SLEEP`: the loop's timer counts monotonic time, so a wall-clock jump
is noticed within that long.

Rules are keyed by their content (without their position in the file): on hot
reload an unchanged rule keeps its rhythm (an ``every`` keeps its anchor), a
changed one starts afresh at once, a removed one stops.

:func:`scheduled_call` and :func:`event` build what a fire sends; ``edgefn
schedule`` uses them too, so the preview is what would run.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import orjson

from edgefn.manager.config import RuleConfig
from edgefn.manager.message import Call
from edgefn.manager.timefilter import rfc3339

log = logging.getLogger("edgefn.scheduler")

# Longest single sleep: how soon a wall-clock jump is noticed.
MAX_SLEEP = 60.0
# A fire that wakes later than this after its nominal time is counted late.
LATE_AFTER = 1.0

# A clock set back by more than this fires by the new time (what cron does); a
# smaller step (NTP) only waits until the clock passes the last fire again.
_SET_BACK = timedelta(seconds=MAX_SLEEP)

Fire = Callable[[RuleConfig, datetime, bool], None]


def event(rule: RuleConfig, nominal: datetime) -> bytes:
    """The event of ``rule``'s fire at ``nominal``: its payload plus the time window, as JSON."""
    if rule.time_filter is None:
        return rule.payload
    base = orjson.loads(rule.payload)  # a mapping: the config checked it
    return orjson.dumps({**base, **rule.time_filter.params(nominal)})


def scheduled_call(rule: RuleConfig, nominal: datetime) -> Call:
    """The call a fire of ``rule`` at ``nominal`` (aware, in the rule's zone) makes."""
    return Call(
        id=0,
        qos=rule.publish.qos,
        topic="",
        payload=event(rule, nominal),
        timestamp=int(nominal.timestamp()),
        function=rule.function,
        invoke_id=str(uuid.uuid4()),
        scheduled_time=rfc3339(nominal),
    )


def _key(rule: RuleConfig) -> RuleConfig:
    return replace(rule, index=0)


@dataclass
class _Entry:
    rule: RuleConfig
    anchor: datetime  # when the scheduler took the rule on: ``every`` counts from here
    after: datetime  # the next fire is the first one strictly after this


class Scheduler:
    """One task that fires every scheduled rule on time (see the module's docstring)."""

    def __init__(self, fire: Fire, clock: Callable[[], float] = time.time) -> None:
        self._fire = fire
        self._clock = clock
        self._entries: dict[RuleConfig, _Entry] = {}
        self._changed = asyncio.Event()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    def update(self, rules: Iterable[RuleConfig]) -> None:
        """Take on the scheduled ones of ``rules``: new start now, unchanged keep their rhythm."""
        now, entries = self._now(), {}
        for rule in rules:
            if rule.schedule is None:
                continue
            old = self._entries.get(_key(rule))
            # An every counts from a whole second: its fire times (and time windows) stay round.
            anchor = now.replace(microsecond=0)
            entries[_key(rule)] = _Entry(rule, anchor, now) if old is None else replace(old, rule=rule)
            if old is None:
                first = rule.schedule.next_fire(now, anchor)
                log.info("rules[%d] (%s): %s; next fire %s", rule.index, rule.function, rule.schedule.describe(),
                         rfc3339(first) if first is not None else "never")
        self._entries = entries
        self._changed.set()

    @property
    def rules(self) -> list[RuleConfig]:
        return [entry.rule for entry in self._entries.values()]

    async def run(self) -> None:
        """Fire rules until cancelled."""
        while True:
            self._changed.clear()
            delay = self._fire_due()
            try:
                async with asyncio.timeout(delay):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _fire_due(self) -> float:
        """Fire every entry that is due; return how long to sleep until the next one."""
        now = self._now()
        earliest: datetime | None = None
        for entry in list(self._entries.values()):
            if entry.after - now > _SET_BACK:  # the clock was set back: go by the new time
                entry.after = now
            nominal = self._next(entry)
            if nominal is not None and nominal.astimezone(timezone.utc) <= now:
                entry.after = now  # whatever was missed meanwhile is not replayed
                late = (now - nominal).total_seconds() > LATE_AFTER
                try:
                    self._fire(entry.rule, nominal, late)
                except Exception:  # one rule's failure must not stop the others' timer
                    log.exception("rules[%d]: the fire at %s failed", entry.rule.index, nominal)
                nominal = self._next(entry)
            if nominal is not None and (earliest is None or nominal < earliest):
                earliest = nominal.astimezone(timezone.utc)
        if earliest is None:
            return MAX_SLEEP
        return min(MAX_SLEEP, max(0.0, (earliest - self._now()).total_seconds()))

    @staticmethod
    def _next(entry: _Entry) -> datetime | None:
        assert entry.rule.schedule is not None
        return entry.rule.schedule.next_fire(entry.after, entry.anchor)

