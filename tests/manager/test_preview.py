"""``edgefn schedule CONFIG``: the next fires of every scheduled rule, without running anything."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from support.manager import write_config

pytestmark = pytest.mark.timeout(60)

FUNCTIONS = [{"name": "fetch", "runtime": "sql", "handler": "select *"},
             {"name": "poll", "runtime": "sql", "handler": "select *"}]


def edgefn(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "edgefn", *args], capture_output=True, timeout=50,
                          stdin=subprocess.DEVNULL)


def document(*rules: dict) -> dict:
    return {"rules": list(rules), "functions": FUNCTIONS}


def test_fires_of_all_rules_come_sorted_by_time_with_the_event_each_call_would_get(tmp_path: Path) -> None:
    path = write_config(tmp_path, document(
        {"schedule": {"frequency": "daily", "day_time": "02:30", "time_zone": "Europe/Berlin"},
         "time_filter": {"start_param": "from", "end_param": "to", "format": "rfc3339", "interval": "day"},
         "payload": {"url": "http://meter/readings"},
         "function": {"name": "fetch"}, "publish": {"topic": "things/42/downlink"}},
        {"subscribe": {"topic": "not/scheduled"}, "function": {"name": "poll"}, "publish": {"topic": "x"}},
        {"schedule": {"frequency": "hourly", "hour": 12, "time_zone": "Asia/Kolkata"},
         "function": {"name": "poll"}, "publish": {"topic": "y"}},
    ))
    done = edgefn("schedule", str(path), "--from", "2026-03-28T12:00:00Z", "--count", "2")
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [(line["rule"], line["at"]) for line in lines] == [
        (2, "2026-03-29T00:00:00+05:30"),
        (0, "2026-03-29T03:30:00+02:00"),  # 02:30 does not exist that night: the gap's length later
        (2, "2026-03-29T12:00:00+05:30"),
        (0, "2026-03-30T02:30:00+02:00"),
    ]
    assert lines[1] == {"rule": 0, "function": "fetch", "at": "2026-03-29T03:30:00+02:00", "event": {
        # interval day is 24 hours of real time, like Go's durations: across the change, 02:30 the day before
        "url": "http://meter/readings", "from": "2026-03-28T02:30:00+01:00", "to": "2026-03-29T03:30:00+02:00"}}
    assert lines[0]["event"] == {}


def test_every_counts_from_the_given_start(tmp_path: Path) -> None:
    path = write_config(tmp_path, document(
        {"schedule": {"every": "90s"}, "function": {"name": "poll"}, "publish": {"topic": "y"}}))
    done = edgefn("schedule", str(path), "--from", "2026-01-01T00:00:00+00:00", "--count", "3")
    assert [orjson.loads(line)["at"] for line in done.stdout.splitlines()] == [
        "2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z", "2026-01-01T00:04:30Z"]


def test_the_default_start_is_now_and_the_default_count_ten(tmp_path: Path) -> None:
    path = write_config(tmp_path, document(
        {"schedule": {"frequency": "minutely"}, "function": {"name": "poll"}, "publish": {"topic": "y"}}))
    before = datetime.now().astimezone()
    done = edgefn("schedule", str(path))
    times = [datetime.fromisoformat(orjson.loads(line)["at"]) for line in done.stdout.splitlines()]
    assert len(times) == 10 and times[0] > before


def test_a_bad_config_exits_1_with_its_problems(tmp_path: Path) -> None:
    path = write_config(tmp_path, document(
        {"schedule": {"frequency": "minutely", "minute": 75}, "function": {"name": "poll"}, "publish": {"topic": "y"}}))
    done = edgefn("schedule", str(path))
    assert done.returncode == 1 and done.stdout == b""
    assert b"rules[0].schedule.minute: must be between 1 and 59, got 75" in done.stderr


@pytest.mark.parametrize("args", [["--from", "yesterday"], ["--from", "2026-01-01T00:00:00"], ["--count", "0"]])
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    path = write_config(tmp_path, document())
    done = edgefn("schedule", str(path), *args)
    assert done.returncode == 2 and b"edgefn schedule: error" in done.stderr
