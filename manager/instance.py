"""One runtime instance: the process it supervises (``process.py``) and the gRPC
client it talks through (``client.py``), with one lifecycle.

Only the process's exit fails the calls in flight, so a crash reads the same
(``Runtime.InstanceCrashed`` with the status or signal) whether the broken
stream or the exit is noticed first.

Readiness: a runtime that writes edgefn's handshake line (the built-in ones; a
custom one that says so) is ready when the line says so, and its line chooses
Talk or unary Call; any other runtime is ready when its address answers
(gRPC health if served, else a connection), and is called with unary Call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgefn.manager.addresses import unix_path
from edgefn.manager.identity import Identity
from edgefn.manager.message import Call
from edgefn.manager.process import RuntimeProcess
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault

if TYPE_CHECKING:
    from edgefn.manager.client import FunctionClient, OutputSink

log = logging.getLogger("edgefn.instance")


class Instance:
    """A runtime process and its gRPC connection.

    Lifecycle: ``start()`` (spawn, become ready, connect) → ``call()`` any
    number of times → ``stop()`` or ``kill()``. When the process exits for any
    reason the calls in flight fail with a fault naming why, ``on_exit`` is
    called once, and ``close()`` releases the channel, pipes and socket file.
    ``on_free`` is called each time a call's slot frees while the process lives.
    """

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        cwd: Path | None,
        env: Mapping[str, str],
        address: str,
        message_max: int,
        on_exit: Callable[["Instance"], None],
        on_free: Callable[[], None] = lambda: None,
        handshake: bool = True,
        identity: Identity | None = None,
    ) -> None:
        self.name = name
        self.started_at = time.monotonic()
        self.ready = False
        self.stopping = False  # stopped on purpose: its exit is not a crash
        self.concurrent: bool | None = None  # the handshake's word on overlapping calls
        self.kill_reason: Fault | None = None  # why we killed it, if we did
        self._address = address
        self._handshake = handshake
        self._on_exit = on_exit
        self._process = RuntimeProcess(name, argv, cwd, env, self._exited, identity)
        self._message_max = message_max
        self._on_free = on_free
        self._client: FunctionClient  # made by start(), once the process is spawned
        self._closer: asyncio.Task[None] | None = None

    # -- what the pool reads -------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def exited(self) -> bool:
        return self._process.exited

    @property
    def in_flight(self) -> int:
        """Calls this instance is running (or has queued)."""
        return self._client.in_flight

    @property
    def last_used(self) -> float:
        return self._client.last_used

    @property
    def pace(self) -> float:
        """Seconds per call of a sequential runtime under load, a moving average."""
        return self._client.pace

    @property
    def pipelines(self) -> bool:
        """True when calls beyond ``concurrency`` may queue in the runtime: a Talk
        runtime that runs its handler's calls one at a time, and has answered."""
        return self._client.talk and self.concurrent is False and self._client.answered

    def describe_exit(self) -> str:
        """``exited with status 3`` / ``killed by signal 9`` (or ``running``)."""
        return self._process.describe_exit()

    def rss(self) -> int | None:
        """Resident memory of the process in bytes (None if it is gone)."""
        return self._process.rss()

    # -- lifecycle -------------------------------------------------------------

    async def start(self, timeout: float, spawned: Callable[[], None] = lambda: None) -> None:
        """Spawn the runtime and wait until it is ready; raise the load ``Fault`` if any.

        ``spawned`` is called once the process exists (the wait for it begins).
        Raises ``OSError`` when the command cannot be executed at all.
        """
        self.started_at = time.monotonic()
        await self._process.spawn()
        spawned()
        # Made now, not before the spawn: the first instance's start imports grpc while the runtime boots.
        from edgefn.manager.client import FunctionClient

        self._client = FunctionClient(
            self.name, self._address, self._message_max, exit=self._process.exit, exit_fault=self._exit_fault,
            on_free=self._on_free, on_fault=self.kill, on_ended=self._talk_ended,
        )
        try:
            async with asyncio.timeout(timeout):
                await self._become_ready()
        except TimeoutError:
            await self._abandon()
            raise Fault(faults.UNAVAILABLE_FAULT, f"{self.name} was not ready within starttimeout ({timeout:g}s)") from None
        except BaseException:
            await self._abandon()
            raise
        if self.exited:  # died right after it was ready
            raise Fault(faults.INSTANCE_CRASHED, f"{self.name} {self.describe_exit()} right after it was ready")
        self._client.last_used = time.monotonic()  # idle from now, not from the spawn
        self.ready = True

    async def _become_ready(self) -> None:
        if not self._handshake:
            self._process.relay_stdout()
            probe = asyncio.create_task(self._client.probe(float("inf")), name=f"{self.name}:probe")
            died = asyncio.create_task(self._process.exit.wait(), name=f"{self.name}:exit-wait")
            try:
                await asyncio.wait((probe, died), return_when=asyncio.FIRST_COMPLETED)
            finally:
                probe.cancel()
                died.cancel()
            if self.exited:
                raise Fault(faults.INSTANCE_CRASHED, f"{self.name} {self.describe_exit()} before it was ready")
            return
        handshake = await self._process.handshake()
        self._process.relay_stdout()
        self.concurrent = handshake.concurrent
        if handshake.talk:
            self._client.open_talk(handshake.batch, sequential=handshake.concurrent is False)

    async def stop(self, grace: float) -> None:
        """Let calls in flight finish, then SIGTERM, then SIGKILL: all within ``grace``
        (no grace: SIGKILL at once, and the runtime says nothing)."""
        self.ready = False
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if not self.exited:
            await self._client.drained(grace)
        self._client.half_close()  # the runtime's stream ends cleanly
        if grace > 0:
            self._process.signal(signal.SIGTERM)
        if not await self._process.wait(deadline - loop.time()):
            self.kill()
            await self._process.exit.wait()
        await self.close()

    def kill(self, reason: Fault | None = None) -> None:
        """Kill the process now; calls in flight fail with ``reason`` (default: crashed)."""
        self.ready = False
        if reason is not None and self.kill_reason is None:
            self.kill_reason = reason
        self._process.kill()

    async def _abandon(self) -> None:
        """Clean up after a failed start: no zombie, no task left behind."""
        self.stopping = True
        self.kill()
        await self._process.exit.wait()
        await self.close()

    def close(self) -> asyncio.Task[None]:
        """Release everything the instance holds (once; awaitable). Kills a live process."""
        if self._closer is None:
            self._closer = asyncio.create_task(self._close(), name=f"{self.name}:close")
        return self._closer

    async def _close(self) -> None:
        self.ready = False
        await self._process.close()
        client = getattr(self, "_client", None)  # None if the process ended before start() made it
        if client is not None:
            await client.close()
        path = unix_path(self._address)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    # -- calls -------------------------------------------------------------------

    async def call(self, call: Call, timeout: float, outputs: OutputSink | None = None) -> bytes:
        """Run one call; return the result payload (b"" = nothing) or raise a ``Fault``.

        Past ``timeout`` the call fails with ``Runtime.Timeout`` at once and the
        instance is killed: a hung handler must not hold the function.
        ``outputs`` takes the call's outputs as they arrive (see ``client.py``).
        """
        if self.exited:
            raise self._exit_fault()
        return await self._client.call(call, timeout, outputs)

    # -- supervision ---------------------------------------------------------------

    def _exit_fault(self) -> Fault:
        reason = self.kill_reason
        if reason is not None:
            return Fault(reason.error_type, reason.message)
        return Fault(faults.INSTANCE_CRASHED, f"{self.name} {self.describe_exit()}")

    def _talk_ended(self) -> None:
        self.ready = False

    def _exited(self) -> None:
        """The process was reaped (called on the loop, once)."""
        self.ready = False
        client = getattr(self, "_client", None)  # None if it ended before start() made it: no call yet
        if client is not None:
            client.fail_all(self._exit_fault())
        self._on_exit(self)
