"""One runtime instance: a child process serving ``Function`` on a private unix socket.

The manager talks to a built-in runtime over one ``Talk`` stream (many calls,
replies matched by ``Sequence``): a unary RPC per message costs a Python gRPC
server ~184 µs of CPU, a stream message much less. Runtimes that only serve
``Call`` (Baetyl's contract) are called with unary RPCs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

import grpc
import orjson

from edgefn.manager.message import Call
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from edgefn.wire import function_pb2, function_pb2_grpc

log = logging.getLogger("edgefn.instance")

# gRPC frames carry the payload plus Baetyl's other fields; leave room for them.
WIRE_OVERHEAD = 64 * 1024


class Instance:
    """A runtime process and its gRPC connection.

    Lifecycle: ``start()`` (spawn, handshake, connect) → ``call()`` any number of
    times → ``stop()`` or ``kill()``. When the process exits for any reason, the
    calls in flight fail with a fault naming why and ``on_exit`` is called once.
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
    ) -> None:
        self.name = name
        self._argv = list(argv)
        self._cwd = cwd
        self._env = dict(env)
        self._address = address
        self._message_max = message_max
        self._on_exit = on_exit
        self.process: asyncio.subprocess.Process | None = None
        self.in_flight = 0
        self.last_used = time.monotonic()
        self.ready = False
        self.stopping = False  # set when the pool retires it: its exit is not a crash
        self.exited = False
        self._kill_reason: Fault | None = None
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._sequence = 0
        self._outbox: asyncio.Queue[function_pb2.FunctionMessage | None] = asyncio.Queue()
        self._channel: grpc.aio.Channel | None = None
        self._stub: function_pb2_grpc.FunctionStub | None = None
        self._talk = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._exit_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    # -- lifecycle -------------------------------------------------------------

    async def start(self, timeout: float) -> None:
        """Spawn the runtime and wait for its handshake; raise the load ``Fault`` if any."""
        self.process = await asyncio.create_subprocess_exec(
            *self._argv,
            cwd=self._cwd,
            env=self._env,
            stdin=asyncio.subprocess.PIPE,  # held open: EOF tells the runtime we are gone
            stdout=asyncio.subprocess.PIPE,  # the handshake line
            stderr=asyncio.subprocess.PIPE,  # relayed into our log
            start_new_session=True,  # a terminal's Ctrl-C reaches only the manager
        )
        self._own(self._relay_stderr(), "stderr")
        try:
            async with asyncio.timeout(timeout):
                handshake = await self._read_handshake()
        except TimeoutError:
            await self._abandon()
            raise Fault(faults.UNAVAILABLE_FAULT, f"{self.name} was not ready within starttimeout ({timeout:g}s)") from None
        except BaseException:
            await self._abandon()
            raise
        self._exit_task = asyncio.create_task(self._watch_exit(), name=f"{self.name}:exit")
        self._connect(handshake)
        self.ready = True

    async def _read_handshake(self) -> dict[str, object]:
        assert self.process and self.process.stdout
        line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            raise Fault(faults.INSTANCE_CRASHED, f"{self.name} exited with status {code} before it was ready")
        try:
            handshake = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise Fault(faults.UNKNOWN_FAULT, f"{self.name} wrote no handshake: {line[:200]!r}") from None
        if not isinstance(handshake, dict):
            raise Fault(faults.UNKNOWN_FAULT, f"{self.name} wrote a malformed handshake: {line[:200]!r}")
        if not handshake.get("ready"):
            raise Fault(
                str(handshake.get("errorType", faults.UNKNOWN_FAULT)),
                str(handshake.get("errorMessage", "")),
                [str(frame) for frame in handshake.get("errorStack") or []],  # type: ignore[union-attr]
            )
        return handshake

    def _connect(self, handshake: Mapping[str, object]) -> None:
        limit = self._message_max + WIRE_OVERHEAD
        self._channel = grpc.aio.insecure_channel(
            self._address,
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                # One channel per instance: never share a subchannel with another instance.
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )
        self._stub = function_pb2_grpc.FunctionStub(self._channel)
        methods = handshake.get("methods") or ["Call"]
        self._talk = isinstance(methods, list) and "Talk" in methods
        if self._talk:
            self._own(self._read_replies(), "talk")

    async def stop(self, grace: float) -> None:
        """Let calls in flight finish (up to ``grace``), then SIGTERM, then SIGKILL."""
        self.ready = False
        self.stopping = True
        if self._pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.gather(*self._pending.values(), return_exceptions=True)
        self._outbox.put_nowait(None)
        self._signal(signal.SIGTERM)
        if self.process is not None:
            try:
                async with asyncio.timeout(grace):
                    await self.process.wait()
            except TimeoutError:
                self.kill()
                await self.process.wait()
        await self._close()

    def kill(self, reason: Fault | None = None) -> None:
        """Kill the process now; calls in flight fail with ``reason`` (default: crashed)."""
        self.ready = False
        if reason is not None and self._kill_reason is None:
            self._kill_reason = reason
        self._signal(signal.SIGKILL)

    async def _abandon(self) -> None:
        """Clean up after a failed start: no zombie, no task left behind."""
        self.stopping = True
        self.kill()
        assert self.process is not None
        await self.process.wait()
        await self._close()

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def _close(self) -> None:
        if self._exit_task is not None:
            await self._exit_task  # the process is gone: this only reports it
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()

    # -- calls -------------------------------------------------------------------

    async def call(self, call: Call, timeout: float) -> bytes:
        """Run one call; return the result payload (b"" = nothing) or raise a ``Fault``."""
        self.in_flight += 1
        try:
            async with asyncio.timeout(timeout):
                if self._talk:
                    return await self._call_talk(call)
                return await self._call_unary(call)
        except TimeoutError:
            # A hung handler must not hold the function: recycle its instance.
            self.kill(Fault(faults.INSTANCE_CRASHED, f"{self.name} was killed: a call on it timed out"))
            raise Fault(faults.TIMEOUT, f"{call.function} did not finish within {timeout:g}s") from None
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()

    def _message(self, call: Call, sequence: int = 0) -> function_pb2.FunctionMessage:
        return function_pb2.FunctionMessage(
            ID=call.id,
            QOS=call.qos,
            Topic=call.topic,
            Payload=call.payload,
            Timestamp=call.timestamp,
            FunctionName=call.function,
            FunctionInvokeID=call.invoke_id,
            Sequence=sequence,
        )

    async def _call_talk(self, call: Call) -> bytes:
        if self.exited:
            raise self._exit_fault()
        self._sequence += 1
        sequence = self._sequence
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        self._outbox.put_nowait(self._message(call, sequence))
        try:
            return await future
        finally:
            self._pending.pop(sequence, None)

    async def _call_unary(self, call: Call) -> bytes:
        assert self._stub is not None
        try:
            reply = await self._stub.Call(self._message(call))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED) or self.exited:
                raise self._exit_fault() from None
            raise Fault.from_status(exc.code().value[0], exc.details()) from None
        return reply.Payload

    async def _requests(self) -> AsyncIterator[function_pb2.FunctionMessage]:
        while (message := await self._outbox.get()) is not None:
            yield message

    async def _read_replies(self) -> None:
        assert self._stub is not None
        pending = self._pending
        try:
            async for reply in self._stub.Talk(self._requests()):
                future = pending.pop(reply.Sequence, None)
                if future is None or future.done():
                    continue
                if reply.Code:
                    future.set_exception(Fault.from_status(reply.Code, reply.Error))
                else:
                    future.set_result(reply.Payload)
        except grpc.aio.AioRpcError as exc:
            if not self.exited and self.ready:
                log.warning("%s: call stream failed: %s", self.name, exc.details())
                self.kill(Fault(faults.UNAVAILABLE_FAULT, f"{self.name}: call stream failed: {exc.details()}"))
        self._fail_pending(self._exit_fault())

    # -- supervision ---------------------------------------------------------------

    def _exit_fault(self) -> Fault:
        if self._kill_reason is not None:
            return Fault(self._kill_reason.error_type, self._kill_reason.message)
        code = self.process.returncode if self.process else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
        return Fault(faults.INSTANCE_CRASHED, f"{self.name} {how}")

    def _fail_pending(self, fault: Fault) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(Fault(fault.error_type, fault.message, fault.stack))
        self._pending.clear()

    async def _watch_exit(self) -> None:
        assert self.process is not None
        await self.process.wait()
        self.exited = True
        self.ready = False
        self._fail_pending(self._exit_fault())
        self._on_exit(self)

    async def _relay_stderr(self) -> None:
        assert self.process and self.process.stderr
        stream = self.process.stderr
        while line := await stream.readline():
            log.info("[%s] %s", self.name, line.decode(errors="replace").rstrip())

    def _own(self, coroutine: object, what: str) -> None:
        task = asyncio.create_task(coroutine, name=f"{self.name}:{what}")  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def rss(self) -> int | None:
        """Resident memory of the process in bytes (None if it is gone)."""
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None
