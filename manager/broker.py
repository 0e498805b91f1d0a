"""The embedded broker: amqtt in a child process, for the quickstart and development.

Without ``hub.address`` the manager starts amqtt (pinned) on 127.0.0.1 at
``hub.embedded.port``. It runs in a child process, not on the manager's loop:
sharing the loop cut a forwarding rule from 4,400 to 2,600 msg/s. The child

* runs in its own session, so a terminal's Ctrl-C reaches only the manager,
  which then stops the broker last;
* exits when its stdin reaches EOF, which is how :meth:`EmbeddedBroker.stop`
  asks it to and also what happens when the manager dies, even by SIGKILL;
* reports one JSON line on stdout once it listens (or why it cannot), then
  points its stdout at stderr; its stderr (errors only) lands in our log.

amqtt accepts anonymous clients here and keeps no session for them once they
disconnect, so QoS 1 messages are not redelivered across reconnects: the
at-least-once promise (SPEC §6) needs an external broker.

The child's entry point is ``python -m edgefn.manager.broker --port N``; this
module imports amqtt only there.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import errno
import json
import logging
import os
import sys
from types import TracebackType
from typing import Any, Self

from edgefn.manager.errors import EdgefnError

log = logging.getLogger("edgefn.broker")

HOST = "127.0.0.1"
START_TIMEOUT = 20.0  # importing amqtt and binding; seconds
STOP_TIMEOUT = 5.0


class BrokerError(EdgefnError):
    """The embedded broker could not start (or died)."""

    def __init__(self, message: str, *, port: int, in_use: bool = False) -> None:
        super().__init__(message)
        self.port = port
        self.in_use = in_use


class EmbeddedBroker:
    """amqtt in a child process: ``async with EmbeddedBroker(port) as broker:``.

    Entering returns once the broker accepts connections on 127.0.0.1:``port``
    (bounded by ``start_timeout``) or raises :class:`BrokerError`; leaving stops
    it. Port 0 picks a free port (see :attr:`port` once started).
    """

    def __init__(self, port: int, *, start_timeout: float = START_TIMEOUT) -> None:
        self.port = port
        self._start_timeout = start_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._running = False  # handshake done, stop() not called: an exit is news

    @property
    def address(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the child and wait for its handshake."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edgefn.manager.broker", "--port", str(self.port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._watch = asyncio.create_task(self._relay_stderr(), name="broker:stderr")
        try:
            hello = await self._handshake()
        except BaseException:
            await self.stop()
            raise
        self.port = int(hello["port"])
        self._running = True
        log.debug("embedded broker pid %d listening on %s", self._process.pid, self.address)

    async def _handshake(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), self._start_timeout)
        except TimeoutError:
            raise BrokerError(
                f"the embedded broker did not start within {self._start_timeout:g}s", port=self.port
            ) from None
        try:
            hello = json.loads(line) if line else {}
        except ValueError:
            hello = {}
        if hello.get("ready") is True:
            return hello
        if hello.get("in_use"):
            raise BrokerError(
                f"hub.embedded.port: port {self.port} on {HOST} is in use; set hub.embedded.port "
                "to a free port (or hub.address to use a running broker)",
                port=self.port, in_use=True,
            )
        await self._process.wait()
        if self._watch is not None:
            await self._watch  # every stderr line is in self._stderr now
        why = hello.get("error") or "\n".join(self._stderr) or f"exit status {self._process.returncode}"
        raise BrokerError(f"the embedded broker failed to start: {why}", port=self.port)

    async def stop(self) -> None:
        """Ask the child to stop (EOF on its stdin); kill it if it lingers."""
        process, self._running = self._process, False
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.warning("embedded broker pid %d did not stop in %gs: killing it", process.pid, STOP_TIMEOUT)
            process.kill()
            await process.wait()
        if self._watch is not None:
            await self._watch

    async def _relay_stderr(self) -> None:
        """Relay the child's stderr (errors only) and report an unexpected exit."""
        process = self._process
        assert process is not None and process.stderr is not None
        while line := await process.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            log.warning("embedded broker: %s", text)
        status = await process.wait()
        if self._running:
            log.error("embedded broker exited unexpectedly (status %s)", status)


# -- the child process --------------------------------------------------------------


def _amqtt_config(port: int) -> dict[str, Any]:
    # amqtt refuses every client unless an auth plugin says yes: the anonymous
    # plugin is the only one. No $SYS or packet-logging plugins (per-packet cost).
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _in_use(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


async def _serve(port: int) -> int:
    from amqtt.broker import Broker

    amqtt_log = logging.getLogger("amqtt")
    amqtt_log.setLevel(logging.CRITICAL)  # a failed start is reported in the handshake
    broker = Broker(_amqtt_config(port))
    try:
        await broker.start()
    except Exception as exc:  # amqtt wraps everything in its BrokerError
        _say({"ready": False, "in_use": _in_use(exc), "error": str(exc)})
        return 3
    amqtt_log.setLevel(logging.ERROR)
    server = broker._servers["default"].instance  # noqa: SLF001 - the port actually bound (port 0)
    bound = server.sockets[0].getsockname()[1] if server is not None else port
    _say({"ready": True, "pid": os.getpid(), "port": bound})
    os.dup2(2, 1)  # nobody reads stdout after the handshake
    await _until_stdin_closes()
    await broker.shutdown()
    return 0


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


def main(argv: list[str] | None = None) -> int:
    """``python -m edgefn.manager.broker --port N``: serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="edgefn.manager.broker", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="%(name)s: %(message)s")
    return asyncio.run(_serve(args.port))


if __name__ == "__main__":
    sys.exit(main())
