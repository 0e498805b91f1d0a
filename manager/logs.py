"""Logging setup: text or JSON lines on stderr, optionally also to a file (SPEC §2)."""

from __future__ import annotations

import logging
import sys
import time

import orjson

from edgefn.manager.config import LoggerConfig

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
          "error": logging.ERROR}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(config: LoggerConfig | None = None, *, level: str | None = None) -> None:
    """Route the ``edgefn`` loggers to stderr (and ``config.path``) in the configured format."""
    config = config or LoggerConfig()
    formatter: logging.Formatter
    if config.format == "json":
        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.path:
        config.path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(config.path))
    root = logging.getLogger("edgefn")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(LEVELS.get(level or config.level, logging.INFO))
    root.propagate = False
