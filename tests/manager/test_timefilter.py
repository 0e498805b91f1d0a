"""Time windows and Mainflux's named formats (Go's layouts) for scheduled calls."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from edgefn.manager.timefilter import FORMATS, TimeFilter, render

# Go's reference time, in a zone at -07:00 ("MST"): every layout's example is this instant.
REFERENCE = datetime(2006, 1, 2, 15, 4, 5, tzinfo=ZoneInfo("America/Denver"))

EXPECTED = {
    "unix": 1136239445,
    "unix_ms": 1136239445000,
    "unix_us": 1136239445000000,
    "unix_ns": 1136239445000000000,
    "rfc3339": "2006-01-02T15:04:05-07:00",
    "rfc3339nano": "2006-01-02T15:04:05-07:00",
    "iso8601": "2006-01-02T15:04:05",
    "compactiso8601": "200601021504",
    "datetime": "2006-01-02 15:04:05",
    "rfc822": "02 Jan 06 15:04 MST",
    "rfc822z": "02 Jan 06 15:04 -0700",
    "rfc850": "Monday, 02-Jan-06 15:04:05 MST",
    "rfc1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "rfc1123z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "ansic": "Mon Jan  2 15:04:05 2006",
    "unixdate": "Mon Jan  2 15:04:05 MST 2006",
    "rubydate": "Mon Jan 02 15:04:05 -0700 2006",
    "stamp": "Jan  2 15:04:05",
    "stampmilli": "Jan  2 15:04:05.000",
    "stampmicro": "Jan  2 15:04:05.000000",
    "stampnano": "Jan  2 15:04:05.000000000",
}


def test_every_format_mainflux_names_is_supported() -> None:
    assert set(FORMATS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_format_renders_gos_reference_time_as_go_does(name: str) -> None:
    assert render(REFERENCE, name) == EXPECTED[name]


def test_unix_formats_are_integers_and_textual_ones_strings() -> None:
    for name in FORMATS:
        assert isinstance(render(REFERENCE, name), int if name in ("unix", "unix_ms", "unix_us", "unix_ns") else str)


def test_fractions_and_utc() -> None:
    moment = datetime(2026, 3, 1, 8, 0, 0, 120000, tzinfo=timezone.utc)
    assert render(moment, "rfc3339") == "2026-03-01T08:00:00Z"
    assert render(moment, "rfc3339nano") == "2026-03-01T08:00:00.12Z"
    assert render(moment, "stampmilli") == "Mar  1 08:00:00.120"
    assert render(moment, "unix_ms") == 1772352000120
    assert render(moment, "rfc1123") == "Sun, 01 Mar 2026 08:00:00 UTC"


def test_half_hour_zones_render_their_offset() -> None:
    moment = datetime(2026, 1, 15, 9, 0, tzinfo=ZoneInfo("Australia/Adelaide"))
    assert render(moment, "rfc3339") == "2026-01-15T09:00:00+10:30"
    assert render(moment, "rfc1123z") == "Thu, 15 Jan 2026 09:00:00 +1030"
    assert render(moment, "rfc822") == "15 Jan 26 09:00 ACDT"


def test_the_window_ends_at_the_nominal_time_by_default() -> None:
    nominal = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
    window = TimeFilter("from", "to", format="unix", interval="minute", value=15)
    assert window.params(nominal) == {"from": 1777895100, "to": 1777896000}


def test_a_forecast_window_starts_at_the_nominal_time() -> None:
    nominal = datetime(2026, 5, 4, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    window = TimeFilter("start", "end", format="datetime", interval="day", value=2, forecast=True)
    assert window.params(nominal) == {"start": "2026-05-04 12:00:00", "end": "2026-05-06 12:00:00"}


def test_a_window_across_a_dst_change_spans_real_time_and_shows_each_end_in_its_offset() -> None:
    nominal = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    window = TimeFilter("from", "to", interval="hour", value=2)
    start, end = window.window(nominal)
    assert end.astimezone(timezone.utc) - start.astimezone(timezone.utc) == timedelta(hours=2)
    assert window.params(nominal) == {"from": "2026-03-29T00:30:00+01:00", "to": "2026-03-29T03:30:00+02:00"}


@pytest.mark.parametrize("fields, message", [
    ({"start_param": "", "end_param": "to"}, "must not be empty"),
    ({"start_param": "t", "end_param": "t"}, "must differ"),
    ({"start_param": "a", "end_param": "b", "format": "kitchen"}, "unknown format"),
    ({"start_param": "a", "end_param": "b", "interval": "week"}, "unknown interval"),
    ({"start_param": "a", "end_param": "b", "value": 0}, "at least 1"),
])
def test_a_wrong_time_filter_cannot_be_built(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        TimeFilter(**fields)
