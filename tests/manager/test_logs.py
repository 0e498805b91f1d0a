"""Logs: no record spans lines or drives the terminal; a handler's output is capped per instance."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from edgefn.manager import logs
from edgefn.manager.config import LoggerConfig


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    logger = logging.getLogger("edgefn.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


@pytest.mark.parametrize("forged", [
    "boom\n2026-01-01 00:00:00,000 INFO    edgefn.manager: edgefn ready",
    "carriage\rreturn", "\x1b[2J\x1b[31mred", "nul\x00", "c1\x9bcsi", "line\u2028separator", "del\x7f",
])
def test_control_characters_in_user_strings_are_escaped_onto_one_line(captured, forged: str) -> None:
    logger, stream = captured
    logger.warning("%s: failed on %s: %s", "rule", "topic/" + forged, forged)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert all(ch.isprintable() for ch in line[:-1]), repr(line)
    assert "\\n" in line or "\\x" in line or "\\r" in line or "\\u2028" in line


def test_printable_text_and_tabs_are_untouched(captured) -> None:
    logger, stream = captured
    logger.info("héllo wörld\tnext ✓")
    assert stream.getvalue().rstrip("\n").endswith("héllo wörld\tnext ✓")


def test_a_traceback_keeps_its_lines_indented_so_none_passes_for_a_record(captured) -> None:
    logger, stream = captured
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 INFO    edgefn: forged\x1b[0m")
    except ValueError:
        logger.exception("it failed")
    first, *rest = stream.getvalue().rstrip("\n").split("\n")
    assert first.endswith("it failed") and rest
    assert all(line.startswith("    ") for line in rest) and "\x1b" not in stream.getvalue()


def test_json_lines_escape_by_json() -> None:
    record = logging.LogRecord("edgefn.x", logging.INFO, __file__, 1, "a\nb\x1b[0m", None, None)
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line and orjson.loads(line)["msg"] == "a\nb\x1b[0m"


def test_configure_names_an_unwritable_logger_path(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(logs.LogError, match=r"logger.path .*file/x.log: cannot write it"):
        logs.configure(LoggerConfig(path=tmp_path / "file" / "x.log"))


def test_unwritable_says_why_and_creates_nothing(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    assert logs.unwritable(tmp_path / "new" / "deeper" / "x.log") is None
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == [tmp_path / "file"]
    assert logs.unwritable(tmp_path / "file" / "x.log") is not None
    assert logs.unwritable(tmp_path) == "it is a directory"
    assert logs.unwritable(tmp_path / "file") is None


# -- the output relay ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def relay(caplog: pytest.LogCaptureFixture) -> tuple[logs.OutputRelay, Clock, pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="edgefn.test-relay")
    clock = Clock()
    logger = logging.getLogger("edgefn.test-relay")
    logger.propagate = True
    return logs.OutputRelay(logger, "f#1", rate=3, width=10, clock=clock), clock, caplog


def test_lines_beyond_the_rate_are_suppressed_and_counted_in_a_note(relay) -> None:
    output, clock, caplog = relay
    for n in range(10):
        output.relay(f"line {n}\n".encode())
    assert [r.getMessage() for r in caplog.records] == ["[f#1] line 0", "[f#1] line 1", "[f#1] line 2"]
    clock.now += 1.5
    output.relay(b"later\n")
    messages = [r.getMessage() for r in caplog.records[3:]]
    assert messages[0].startswith("[f#1] (edgefn: 7 lines of output suppressed over 1.5s")
    assert messages[1] == "[f#1] later"


def test_close_reports_what_was_suppressed(relay) -> None:
    output, _, caplog = relay
    for _ in range(5):
        output.relay(b"x\n")
    output.close()
    assert "2 lines of output suppressed" in caplog.records[-1].getMessage()
    output.close()
    assert len(caplog.records) == 4  # said once


def test_a_long_line_is_cut_to_the_width_saying_so(relay) -> None:
    output, _, caplog = relay
    output.relay(b"0123456789abcdef\n")
    assert caplog.records[0].getMessage() == "[f#1] 0123456789… (17 bytes, cut to 10 characters)"


def test_the_defaults_bound_a_flood() -> None:
    assert logs.OUTPUT_LINES_PER_SECOND * logs.OUTPUT_LINE_MAX <= 1024 * 1024


def test_json_lines_also_escape_what_json_leaves_raw() -> None:
    record = logging.LogRecord("edgefn.x", logging.INFO, __file__, 1, "c1\x9b[2J del\x7f sep\u2028 ok é", None, None)
    line = logs.JsonFormatter().format(record)
    assert line.isprintable() and orjson.loads(line)["msg"] == "c1\x9b[2J del\x7f sep\u2028 ok é"


def test_json_lines_carry_the_records_fields_as_keys_on_one_line() -> None:
    record = logging.makeLogRecord({"name": "edgefn.router", "levelno": logging.WARNING, "levelname": "WARNING",
                                    "msg": "rules[%d]: %s failed on %s", "args": (0, "f", "a\nb"),
                                    "rule": 0, "function": "f", "topic": "a\nb", "clientid": "c2f",
                                    "errorType": "ValueError", "pid": 42, "odd": object()})
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["msg"] == "rules[0]: f failed on a\nb"
    assert (entry["rule"], entry["function"], entry["topic"], entry["clientid"], entry["errorType"], entry["pid"]) \
        == (0, "f", "a\nb", "c2f", "ValueError", 42)
    assert entry["odd"].startswith("<object object")  # what JSON cannot hold is written as text
