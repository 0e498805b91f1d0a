"""Logging setup: text or JSON lines on stderr, optionally also to a file (SPEC §2).

Much of what is logged comes from users: topics, error messages, a handler's
own output. A newline in one of them must not forge a log line, and an ANSI
escape must not reach the operator's terminal, so the text formatter escapes
control characters once, for every record (JSON lines are escaped by JSON
itself). A handler's relayed output is also capped per instance
(:class:`OutputRelay`): a flood of prints must not fill the disk or slow the
manager's other work.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from edgefn.manager.config import LoggerConfig
from edgefn.manager.errors import EdgefnError

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
          "error": logging.ERROR}
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators, as
# visible escapes; a tab is harmless and stays. Backslashes are not doubled:
# the point is that no record spans lines or drives the terminal.
_NAMED = {"\n": "\\n", "\r": "\\r", "\x1b": "\\x1b"}
_CONTROLS = [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
_ESCAPES = str.maketrans({code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
                          for code in _CONTROLS})
_ESCAPES_KEEP_NEWLINES = {code: escape for code, escape in _ESCAPES.items() if code != ord("\n")}
# JSON escapes C0 controls itself; these it leaves raw, and a terminal may still act on them.
_JSON_ESCAPES = str.maketrans({code: f"\\u{code:04x}" for code in [*range(0x7F, 0xA0), 0x2028, 0x2029]})


class LogError(EdgefnError):
    """``logger.path`` cannot be written."""


def escape(text: str) -> str:
    """``text`` with control characters made visible (``\\n``, ``\\x1b``): one line, inert on a terminal."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """The text format, with every control character in the message escaped.

    A traceback keeps its lines (it is ours, not the user's), but each
    continuation line is indented and its other controls escaped, so it can
    neither pass for a record of its own nor drive the terminal.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        message = record.message
        if not message.isprintable():  # the common case costs one C scan
            record = logging.makeLogRecord(record.__dict__)
            record.message = escape(message)
        return super().formatMessage(record)

    def formatException(self, ei: object) -> str:  # noqa: N802
        return _indent(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.translate(_ESCAPES_KEEP_NEWLINES).split("\n"))


# What every LogRecord has: anything else on a record came from ``extra=`` and is a field.
_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the record's fields, and exc when there is one.

    Fields are what the call site passed as ``extra=`` (``function``, ``rule``,
    ``topic``, ``clientid``, ``pid``, ``errorType``…): a log shipper can filter
    on them without parsing ``msg``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_KEYS and key not in entry:
                entry[key] = value if isinstance(value, (str, int, float, bool, dict, list)) or value is None \
                    else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str).decode()
        return line if line.isprintable() else line.translate(_JSON_ESCAPES)


def configure(config: LoggerConfig | None = None, *, level: str | None = None) -> None:
    """Route the ``edgefn`` loggers to stderr (and ``config.path``) in the configured format.

    Raises :class:`LogError` when ``logger.path`` cannot be opened.
    """
    config = config or LoggerConfig()
    formatter = JsonFormatter() if config.format == "json" else TextFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.path:
        handlers.append(_file_handler(config.path))
    root = logging.getLogger("edgefn")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(LEVELS.get(level or config.level, logging.INFO))
    root.propagate = False


def _file_handler(path: Path) -> logging.FileHandler:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return logging.FileHandler(path)
    except OSError as exc:
        raise LogError(f"logger.path {path}: cannot write it: {exc.strerror or exc}") from None


def unwritable(path: Path) -> str | None:
    """Why a log file at ``path`` could not be written, or None if it can; creates nothing.

    ``edgefn check`` and config load ask this, so ``run`` never dies of it later.
    """
    try:
        if path.exists():
            if path.is_dir():
                return "it is a directory"
            with path.open("ab"):
                return None
        folder = path.parent
        while not folder.exists():  # run creates the missing folders: the first existing one decides
            folder = folder.parent
        if not folder.is_dir():
            return f"{folder} is not a directory"
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


# -- a handler's output --------------------------------------------------------------------

# What one instance may put into the log: lines per second, characters per line.
OUTPUT_LINES_PER_SECOND = 100
OUTPUT_LINE_MAX = 2000


class OutputRelay:
    """Relays one instance's output lines into ``log``, capped.

    At most ``rate`` lines each second (the rest are counted, not decoded), each
    cut to ``width`` characters; when lines were suppressed, a note says how many
    before the next line that gets through (or at :meth:`close`).
    """

    def __init__(self, log: logging.Logger, name: str, *, rate: int = OUTPUT_LINES_PER_SECOND,
                 width: int = OUTPUT_LINE_MAX, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._name = name
        self._rate = rate
        self._width = width
        self._clock = clock
        self._window = float("-inf")  # start of the current one-second window
        self._count = 0  # lines relayed in the window
        self._suppressed = 0  # lines dropped since the last note
        self._since = 0.0  # when the first of them was dropped

    def relay(self, line: bytes) -> None:
        """Log one line of output (bytes as read, newline included), unless over the rate."""
        now = self._clock()
        if now - self._window >= 1.0:
            self._window, self._count = now, 0
        if self._count >= self._rate:
            if not self._suppressed:
                self._since = now
            self._suppressed += 1
            return
        self._count += 1
        if self._suppressed:
            self._note(now)
        text = line[: self._width * 4].decode(errors="replace").rstrip()  # 4: UTF-8's widest character
        if len(text) > self._width:
            text = f"{text[: self._width]}… ({len(line)} bytes, cut to {self._width} characters)"
        self._log.info("[%s] %s", self._name, text, extra={"instance": self._name})

    def close(self) -> None:
        """The output ended: say what was suppressed since the last note."""
        if self._suppressed:
            self._note(self._clock())

    def _note(self, now: float) -> None:
        self._log.warning("[%s] (edgefn: %d lines of output suppressed over %.1fs: more than %d lines a second)",
                          self._name, self._suppressed, max(now - self._since, 0.0), self._rate)
        self._suppressed = 0
