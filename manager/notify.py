"""systemd's readiness protocol (``sd_notify``), without a dependency.

Under a ``Type=notify`` unit, systemd sets ``NOTIFY_SOCKET`` (a path, or an
abstract socket written ``@name``) and waits for ``READY=1`` before it counts
the service as started; ``STOPPING=1`` says a stop began; with ``WatchdogSec``
it also sets ``WATCHDOG_USEC`` and expects ``WATCHDOG=1`` more often than
that, or it restarts the service. Each message is one datagram. Without
``NOTIFY_SOCKET`` every call is a no-op, so the manager notifies unconditionally.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger("edgefn.manager")


class Notifier:
    """Sends sd_notify messages to ``NOTIFY_SOCKET`` (if set)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        path = environ.get("NOTIFY_SOCKET", "")
        # An abstract socket's name starts with a NUL byte; systemd writes it with "@".
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog = _watchdog_interval(environ)
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, message: str) -> None:
        """Send one message, like ``READY=1``; a failure is logged once, never raised."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd at NOTIFY_SOCKET: %s", exc.strerror or exc)

    async def keep_alive(self) -> None:
        """Send ``WATCHDOG=1`` at half the watchdog interval, until cancelled (no-op without a watchdog)."""
        if not self.enabled or self.watchdog is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog / 2)


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """WATCHDOG_USEC in seconds, if it is meant for this process (WATCHDOG_PID unset or ours)."""
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000
