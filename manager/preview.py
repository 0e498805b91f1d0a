"""``edgefn schedule CONFIG``: the next fires of every scheduled rule, without running anything.

The way to see a schedule before trusting it: each fire is one JSON line
``{"rule": i, "function": ..., "at": <RFC 3339 in the rule's zone>, "event": {...}}``,
sorted by time across rules, with the event the call would get (payload and
time window), computed by the same code the manager fires with.
"""

from __future__ import annotations

import argparse
import os
import heapq
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import orjson

from edgefn.manager.config import RuleConfig
from edgefn.manager.scheduler import event
from edgefn.manager.timefilter import rfc3339

EXIT_OK = 0
EXIT_PROBLEMS = 1
DEFAULT_COUNT = 10


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``schedule`` subcommand to ``edgefn``'s subparsers; its handler is :func:`run`."""
    parser = subparsers.add_parser(
        "schedule",
        help="print the next fires of every scheduled rule, without running anything",
        description="Print the next fires of every scheduled rule as JSON lines, sorted by time, with the "
        "event each call would get. Nothing is run; exit 1 with the problems of a bad config.",
    )
    parser.add_argument("config", help="the YAML config file")
    parser.add_argument("--from", dest="start", type=_instant, metavar="TIME",
                        help="list fires after this RFC 3339 instant, like 2026-03-29T00:00:00+01:00 (default: now)")
    parser.add_argument("--count", type=_count, default=DEFAULT_COUNT, metavar="N",
                        help=f"fires per rule (default {DEFAULT_COUNT})")
    parser.set_defaults(handler=run)
    return parser


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an RFC 3339 instant like 2026-03-29T02:30:00Z, got {text!r}")
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"expected an instant with its offset (Z or +01:00), got {text!r}")
    return moment


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return count


def run(args: argparse.Namespace) -> int:
    """Run ``edgefn schedule`` with parsed ``args``; return the exit status."""
    from edgefn.cli import _load  # the one place that prints a config's problems

    config = _load(args.config)
    if config is None:
        return EXIT_PROBLEMS
    start = args.start or datetime.now(timezone.utc)
    out = sys.stdout.buffer
    try:
        for rule, nominal in fires(config.rules, start, args.count):  # type: ignore[attr-defined]
            out.write(line(rule, nominal) + b"\n")
        out.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def line(rule: RuleConfig, nominal: datetime) -> bytes:
    """One fire as its JSON line."""
    return orjson.dumps({
        "rule": rule.index,
        "function": rule.function,
        "at": rfc3339(nominal),
        "event": orjson.Fragment(event(rule, nominal)),
    })


def fires(rules: Iterable[RuleConfig], start: datetime, count: int) -> Iterator[tuple[RuleConfig, datetime]]:
    """The next ``count`` fires of each scheduled rule after ``start``, merged in time order.

    An ``every`` counts from ``start`` (its whole second), as it would from a
    manager started then.
    """
    anchor = start.replace(microsecond=0)  # as the scheduler anchors it

    def one(rule: RuleConfig) -> Iterator[tuple[datetime, int, RuleConfig]]:
        assert rule.schedule is not None
        after = start
        for _ in range(count):
            nominal = rule.schedule.next_fire(after, anchor)
            if nominal is None:
                return
            yield nominal, rule.index, rule
            after = nominal

    streams = [one(rule) for rule in rules if rule.schedule is not None]
    for nominal, _, rule in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield rule, nominal
