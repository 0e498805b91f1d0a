"""Scheduled rules in the config: every key read, every mistake named with its path and line."""

from __future__ import annotations

from datetime import datetime, time, timezone
from pathlib import Path

import orjson
import pytest

from edgefn.manager.config import ConfigError, load_config
from edgefn.manager.schedule import Cron, Daily, Every, Hourly, Minutely, Once, Weekly
from edgefn.manager.timefilter import TimeFilter

FUNCTIONS = "functions:\n  - {name: f, runtime: sql, handler: select *}\n"


def load(tmp_path: Path, rule: str, environ: dict[str, str] | None = None):
    path = tmp_path / "edgefn.yml"
    path.write_text("rules:\n  - function: {name: f}\n    publish: {topic: out, qos: 1}\n" + rule + FUNCTIONS)
    return load_config(path, environ or {})


def problems(tmp_path: Path, rule: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, rule)
    return [f"{problem.line}: {problem.path}: {problem.message}" for problem in caught.value.problems]


@pytest.mark.parametrize("schedule, expected", [
    ('{frequency: once, date_time: "2099-12-24 18:00", time_zone: Europe/Berlin}',
     Once(at=datetime(2099, 12, 24, 18, 0), time_zone="Europe/Berlin")),
    ("{frequency: minutely, minute: 5}", Minutely(minute=5)),
    ("{frequency: minutely}", Minutely(minute=1)),
    ("{frequency: hourly, hour: 3, time_zone: Asia/Kolkata}", Hourly(hour=3, time_zone="Asia/Kolkata")),
    ('{frequency: daily, day_time: "14:30"}', Daily(at=time(14, 30))),
    ("{frequency: daily, day_time: 14:30}", Daily(at=time(14, 30))),  # YAML 1.1 would make this 870
    ('{frequency: WEEKLY, week: {days: [mon, FRI, MON], time: "08:00"}}', Weekly(days=("MON", "FRI"), at=time(8, 0))),
    ("{every: 90s}", Every(seconds=90)),
    ("{every: 500ms, time_zone: Australia/Adelaide}", Every(seconds=0.5, time_zone="Australia/Adelaide")),
    ('{cron: "*/5 * * * 1-5", time_zone: America/New_York}', Cron(cron="*/5 * * * 1-5", time_zone="America/New_York")),
])
def test_each_kind_of_schedule_loads(tmp_path: Path, schedule: str, expected) -> None:
    rule = load(tmp_path, f"    schedule: {schedule}\n").rules[0]
    assert rule.schedule == expected
    assert rule.subscribe is None and rule.time_filter is None and rule.payload == b"{}"


def test_a_time_filter_and_a_payload_load(tmp_path: Path) -> None:
    rule = load(tmp_path, (
        "    schedule: {every: 30s}\n"
        "    time_filter: {start_param: from, end_param: to, format: RFC3339Nano, interval: day, value: 7,"
        " forecast: true}\n"
        "    payload: {url: 'http://${HOST}/r', n: 3, ratio: 0.5, on: true, none: ~, list: [1, a], zip: '01'}\n"
    ), {"HOST": "meter"}).rules[0]
    assert rule.time_filter == TimeFilter("from", "to", "rfc3339nano", "day", 7, True)
    assert orjson.loads(rule.payload) == {"url": "http://meter/r", "n": 3, "ratio": 0.5, "on": True,
                                          "none": None, "list": [1, "a"], "zip": "01"}


def test_a_time_filter_has_mainflux_defaults(tmp_path: Path) -> None:
    rule = load(tmp_path, "    schedule: {every: 30s}\n    time_filter: {start_param: a, end_param: b}\n").rules[0]
    assert rule.time_filter == TimeFilter("a", "b", "rfc3339", "hour", 1, False)


def test_a_payload_may_be_any_value_without_a_time_filter(tmp_path: Path) -> None:
    rule = load(tmp_path, "    schedule: {every: 30s}\n    payload: [1, 2]\n").rules[0]
    assert rule.payload == b"[1,2]"


@pytest.mark.parametrize("rule, expected", [
    ("    subscribe: {topic: a}\n    schedule: {every: 1s}\n",
     "5: rules[0].schedule: a rule has either subscribe or schedule, not both; remove one"),
    ("", "2: rules[0]: missing subscribe or schedule"),
    ("    schedule: {frequency: daily, day_time: '14:30', time_zone: Europe/Berln}\n",
     "4: rules[0].schedule.time_zone: unknown time zone 'Europe/Berln'"),
    ("    schedule: {frequency: daily, day_time: '24:00'}\n", "4: rules[0].schedule.day_time: expected a time of day"),
    ("    schedule: {frequency: daily, day_time: '7.30'}\n", "4: rules[0].schedule.day_time: expected a time of day"),
    ("    schedule: {frequency: daily}\n", "4: rules[0].schedule.day_time: missing"),
    ("    schedule: {frequency: minutely, minute: 60}\n", "4: rules[0].schedule.minute: must be between 1 and 59"),
    ("    schedule: {frequency: minutely, minute: 0}\n", "4: rules[0].schedule.minute: must be between 1 and 59"),
    ("    schedule: {frequency: hourly, hour: 24}\n", "4: rules[0].schedule.hour: must be between 1 and 23"),
    ("    schedule:\n      frequency: weekly\n      week: {days: [MON, MONDAY], time: '08:00'}\n",
     "6: rules[0].schedule.week.days[1]: expected a day from SUN, MON, TUE, WED, THU, FRI, SAT, got 'MONDAY'"),
    ("    schedule: {frequency: weekly, week: {days: [], time: '08:00'}}\n",
     "4: rules[0].schedule.week.days: expected at least one day"),
    ("    schedule: {frequency: fortnightly}\n", "4: rules[0].schedule.frequency: expected one of once, minutely"),
    ("    schedule: {frequency: once, date_time: '2026-02-30 10:00'}\n",
     "4: rules[0].schedule.date_time: expected a date and time \"YYYY-MM-DD HH:MM\" (a real day)"),
    ("    schedule: {cron: '* * * *'}\n", "4: rules[0].schedule.cron: expected 5 fields"),
    ("    schedule: {cron: '0 25 * * *'}\n", "4: rules[0].schedule.cron: bad cron expression '0 25 * * *': Bad hour"),
    ("    schedule: {every: 0s}\n", "4: rules[0].schedule.every: must be more than 0"),
    ("    schedule: {every: 1s, cron: '* * * * *'}\n", "4: rules[0].schedule.cron: a schedule has one of frequency"),
    ("    schedule: {time_zone: UTC}\n", "4: rules[0].schedule: missing; expected one of frequency, every or cron"),
    ("    schedule: {every: 1s}\n    time_filter: {start_param: from, end_param: to}\n    payload: [1]\n",
     "6: rules[0].payload: a time_filter adds keys to the payload, so the payload must be a mapping"),
    ("    schedule: {every: 1s}\n    payload: 'just text'\n    time_filter: {start_param: a, end_param: b}\n",
     "5: rules[0].payload: a time_filter adds keys to the payload"),
    ("    schedule: {every: 1s}\n    time_filter: {start_param: t, end_param: t}\n",
     "5: rules[0].time_filter.end_param: must differ from start_param"),
    ("    schedule: {every: 1s}\n    time_filter: {start_param: a, end_param: b, format: kitchen}\n",
     "5: rules[0].time_filter.format: expected one of unix, unix_ms"),
    ("    schedule: {every: 1s}\n    time_filter: {start_param: a, end_param: b, interval: week}\n",
     "5: rules[0].time_filter.interval: expected one of minute, hour, day"),
    ("    schedule: {every: 1s}\n    time_filter: {end_param: b}\n", "5: rules[0].time_filter.start_param: missing"),
    ("    subscribe: {topic: a}\n    payload: {a: 1}\n",
     "5: rules[0].payload: only a scheduled rule has a time_filter or payload"),
])
def test_each_mistake_is_a_problem_with_its_path_and_line(tmp_path: Path, rule: str, expected: str) -> None:
    found = problems(tmp_path, rule)
    assert any(problem.startswith(expected) for problem in found), found


def test_a_once_in_the_past_is_a_warning_not_an_error(tmp_path: Path) -> None:
    config = load(tmp_path, "    schedule: {frequency: once, date_time: '2020-01-01 10:00'}\n")
    assert [warning.path for warning in config.warnings] == ["rules[0].schedule.date_time"]
    assert "in the past" in config.warnings[0].message
    assert config.rules[0].schedule.next_fire(datetime.now(timezone.utc)) is None


def test_keys_of_another_frequency_warn_like_mainflux_ignores_them(tmp_path: Path) -> None:
    config = load(tmp_path, "    schedule: {frequency: hourly, hour: 2, minute: 5}\n")
    assert config.rules[0].schedule == Hourly(hour=2)
    assert [warning.path for warning in config.warnings] == ["rules[0].schedule.minute"]


def test_scheduled_rules_compare_by_content_for_hot_reload(tmp_path: Path) -> None:
    rule = "    schedule: {frequency: daily, day_time: '02:30', time_zone: Europe/Berlin}\n"
    assert load(tmp_path, rule).rules == load(tmp_path, rule).rules
    assert len({load(tmp_path, rule).rules[0], load(tmp_path, rule).rules[0]}) == 1


@pytest.mark.parametrize("topic", ["out/{1}", "out/{topic}", "{2}"])
def test_a_scheduled_rules_topics_cannot_name_input_levels(tmp_path: Path, topic: str) -> None:
    path = tmp_path / "edgefn.yml"
    path.write_text("rules:\n  - function: {name: f}\n    schedule: {every: 1s}\n"
                    f"    publish: {{topic: 'things/{{function}}', qos: 1}}\n    error: {{topic: '{topic}'}}\n" + FUNCTIONS)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == ("rules[0].error.topic", 5)
    assert "a scheduled rule has no input topic" in problem.message


def test_a_scheduled_rules_topics_may_name_function_and_clientid(tmp_path: Path) -> None:
    config = load(tmp_path, "    schedule: {every: 1s}\n    error: {topic: 'errors/{clientid}/{function}'}\n")
    assert config.rules[0].error is not None and config.rules[0].error.template is not None
