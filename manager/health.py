"""The HTTP endpoint of ``metrics.address``: ``/metrics``, ``/healthz``, ``/readyz``.

A small HTTP/1.0-style handler on the manager's own event loop, not
prometheus-client's threaded server: readiness and the counters are the loop's
state, read where they live with no locking, and the endpoint is one owned
server that stops with the manager. Each request is a GET of one path; the
answer closes the connection. A scrape renders a few hundred lines at most,
well under a millisecond per function, so the loop is not held up.

- ``/healthz``: 200 while the process serves (the loop answers).
- ``/readyz``: 200 after ``edgefn ready``; 503 while starting, draining, or
  with any hub connection down.
- ``/metrics``: the Prometheus text format (:mod:`edgefn.manager.exposition`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from edgefn.manager.config import MetricsConfig
from edgefn.manager.errors import EdgefnError
from edgefn.manager.exposition import CONTENT_TYPE, Observed, exposition, render

__all__ = ["HealthServer", "MetricsError"]

log = logging.getLogger("edgefn.metrics")

# A request line and headers larger than this, or slower than the timeout, are dropped.
REQUEST_MAX = 8192
REQUEST_TIMEOUT = 5.0


class MetricsError(EdgefnError):
    """``metrics.address`` cannot be listened on."""


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` for ``manager``."""

    def __init__(self, config: MetricsConfig, manager: Observed) -> None:
        self.config = config
        self._manager = manager
        self._registry = exposition(manager)
        self._server: asyncio.Server | None = None
        self.port = config.port

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port,
                                                      limit=REQUEST_MAX)
        except OSError as exc:
            raise MetricsError(f"metrics.address {self.config.address}: cannot listen there: "
                               f"{exc.strerror or exc}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics (/healthz, /readyz)",
                 self.config.host if ":" not in self.config.host else f"[{self.config.host}]", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body = self._answer(head.split(b"\r\n", 1)[0])
            writer.write(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (status.encode(), content_type.encode(), len(body)) + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that went away or sent garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, request_line: bytes) -> tuple[str, str, bytes]:
        parts = request_line.split()
        if len(parts) != 3 or parts[0] != b"GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/metrics":
            return "200 OK", CONTENT_TYPE, render(self._registry)
        if path == b"/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == b"/readyz":
            if self._manager.ready:
                return "200 OK", "text/plain", b"ready\n"
            return "503 Service Unavailable", "text/plain", b"not ready\n"
        return "404 Not Found", "text/plain", b"/metrics, /healthz or /readyz\n"
