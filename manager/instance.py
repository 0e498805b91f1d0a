"""One runtime instance: a child process serving ``Function`` on a private unix socket.

The manager talks to a built-in runtime over one ``Talk`` stream (many calls,
replies matched by ``Sequence``): a unary RPC per message costs a Python gRPC
server ~184 µs of CPU, a stream message much less. Runtimes that only serve
``Call`` (Baetyl's contract) are called with unary RPCs.

The process's exit is seen the moment the child watcher reaps it (the subprocess
protocol's ``process_exited``), not when its pipes close: a grandchild holding
stderr open must not hide a crash. Only that exit fails the calls in flight, so
a crash reads the same (``Runtime.InstanceCrashed`` with the status or signal)
whether the broken Talk stream or the exit is noticed first.
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

from edgefn.manager.logs import OutputRelay
from edgefn.manager.message import Call
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from edgefn.wire import function_pb2, function_pb2_grpc

log = logging.getLogger("edgefn.instance")

# At most this many calls share one Talk frame (runtimes whose handshake says "batch").
BATCH_MAX = 64
# ... and at most this many payload bytes: a frame must stay under the gRPC size limit.
BATCH_BYTES = 32 * 1024
_NOTHING = object()  # nothing carried over to the next frame
# gRPC frames carry the payload plus Baetyl's other fields; leave room for them.
WIRE_OVERHEAD = 64 * 1024
# A broken call stream usually means the process died: wait this long for its
# exit to name the fault before calling the instance unreachable and killing it.
STREAM_LOSS_GRACE = 2.0
# After the exit, stderr is relayed until EOF or this long (a grandchild may hold it).
STDERR_DRAIN = 0.5
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# A call in flight: the caller's future, its deadline (loop time) and the call.
_Pending = tuple["asyncio.Future[bytes]", float, Call]


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol, plus a callback the moment the process is reaped."""

    def __init__(self, on_exit: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self._exit_callback = on_exit

    def process_exited(self) -> None:
        super().process_exited()
        self._exit_callback()


class Instance:
    """A runtime process and its gRPC connection.

    Lifecycle: ``start()`` (spawn, handshake, connect) → ``call()`` any number of
    times → ``stop()`` or ``kill()``. When the process exits for any reason the
    calls in flight fail with a fault naming why, ``on_exit`` is called once, and
    ``close()`` releases the channel, pipes and socket file. ``on_free`` is called
    each time a call's slot frees while the process lives.
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
    ) -> None:
        self.name = name
        self._output = OutputRelay(log, name)  # stdout and stderr share one cap
        self._argv = list(argv)
        self._cwd = cwd
        self._env = dict(env)
        self._address = address
        self._message_max = message_max
        self._on_exit = on_exit
        self._on_free = on_free
        self.pid: int | None = None
        self.returncode: int | None = None
        self.started_at = time.monotonic()
        self.last_used = self.started_at
        self.answered = False  # set by the first answer on the Talk stream
        self.ready = False
        self.stopping = False  # stopped on purpose: its exit is not a crash
        self.exited = False
        self.concurrent: bool | None = None  # the handshake's word on overlapping calls
        self.kill_reason: Fault | None = None  # why we killed it, if we did
        self._transport: asyncio.SubprocessTransport | None = None
        self._protocol: _Protocol | None = None
        self._exit = asyncio.Event()
        self._drained: asyncio.Event | None = None  # set by stop(): wakes when nothing is in flight
        # sequence → (future, deadline, call), oldest first. An entry stays until
        # the runtime answers or the process dies, even when its caller gave up:
        # the runtime is still running that call, so the slot is still taken.
        self._pending: dict[int, _Pending] = {}
        self._watchdog: asyncio.TimerHandle | None = None
        self._unary = 0
        self._sequence = 0
        self._outbox: asyncio.Queue[function_pb2.FunctionMessage | None] = asyncio.Queue()
        self._channel: grpc.aio.Channel | None = None
        self._stub: function_pb2_grpc.FunctionStub | None = None
        self._talk = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closer: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        """Calls this instance is running (or has queued)."""
        return len(self._pending) + self._unary

    @property
    def pipelines(self) -> bool:
        """True when calls beyond ``concurrency`` may queue in the runtime: a Talk
        runtime that runs its handler's calls one at a time, and has answered."""
        return self._talk and self.concurrent is False and self.answered

    def describe_exit(self) -> str:
        """``exited with status 3`` / ``killed by signal 9`` (or ``running``)."""
        code = self.returncode
        if code is None:
            return "running"
        return f"killed by signal {-code}" if code < 0 else f"exited with status {code}"

    # -- lifecycle -------------------------------------------------------------

    async def start(self, timeout: float) -> None:
        """Spawn the runtime and wait for its handshake; raise the load ``Fault`` if any.

        Raises ``OSError`` when the command cannot be executed at all.
        """
        loop = asyncio.get_running_loop()
        self.started_at = time.monotonic()
        self._transport, self._protocol = await loop.subprocess_exec(
            lambda: _Protocol(self._exited, loop),
            *self._argv,
            cwd=self._cwd,
            env=self._env,
            stdin=asyncio.subprocess.PIPE,  # held open: EOF tells the runtime we are gone
            stdout=asyncio.subprocess.PIPE,  # the handshake line
            stderr=asyncio.subprocess.PIPE,  # relayed into our log
            start_new_session=True,  # a terminal's Ctrl-C reaches only the manager
        )
        self.pid = self._transport.get_pid()
        assert self._protocol.stderr is not None
        self._own(self._relay(self._protocol.stderr), "stderr")
        try:
            async with asyncio.timeout(timeout):
                handshake = await self._read_handshake()
        except TimeoutError:
            await self._abandon()
            raise Fault(faults.UNAVAILABLE_FAULT, f"{self.name} was not ready within starttimeout ({timeout:g}s)") from None
        except BaseException:
            await self._abandon()
            raise
        if self.exited:  # died right after its handshake
            raise Fault(faults.INSTANCE_CRASHED, f"{self.name} {self.describe_exit()} right after it was ready")
        self._connect(handshake)
        # A custom runtime may go on writing to stdout: keep the pipe from filling up.
        assert self._protocol is not None and self._protocol.stdout is not None
        self._own(self._relay(self._protocol.stdout), "stdout")
        self.last_used = time.monotonic()  # idle from now, not from the spawn
        self.ready = True

    async def _read_handshake(self) -> dict[str, object]:
        assert self._protocol is not None and self._protocol.stdout is not None
        line = await self._protocol.stdout.readline()
        if not line:
            await self._exit.wait()
            raise Fault(faults.INSTANCE_CRASHED, f"{self.name} {self.describe_exit()} before it was ready")
        try:
            handshake = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise Fault(faults.UNKNOWN_FAULT, f"{self.name} wrote no handshake: {line[:200]!r}") from None
        if not isinstance(handshake, dict):
            raise Fault(faults.UNKNOWN_FAULT, f"{self.name} wrote a malformed handshake: {line[:200]!r}")
        if not handshake.get("ready"):
            stack = handshake.get("errorStack")
            raise Fault(
                str(handshake.get("errorType", faults.UNKNOWN_FAULT)),
                str(handshake.get("errorMessage", "")),
                [str(frame) for frame in stack] if isinstance(stack, list) else [],
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
        concurrent = handshake.get("concurrent")
        self.concurrent = concurrent if isinstance(concurrent, bool) else None
        methods = handshake.get("methods") or ["Call"]
        self._talk = isinstance(methods, list) and "Talk" in methods
        self._batch = handshake.get("batch") is True
        if self._talk:
            self._own(self._read_replies(), "talk")

    async def stop(self, grace: float) -> None:
        """Let calls in flight finish, then SIGTERM, then SIGKILL: all within ``grace``."""
        self.ready = False
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.in_flight and not self.exited:
            self._drained = asyncio.Event()
            await _wait_any((self._drained, self._exit), deadline - loop.time())
        self._outbox.put_nowait(None)  # half-close Talk: the runtime's stream ends cleanly
        self._signal(signal.SIGTERM)
        if not await _wait_any((self._exit,), deadline - loop.time()):
            self.kill()
            await self._exit.wait()
        await self.close()

    def kill(self, reason: Fault | None = None) -> None:
        """Kill the process now; calls in flight fail with ``reason`` (default: crashed)."""
        self.ready = False
        if reason is not None and self.kill_reason is None:
            self.kill_reason = reason
        self._signal(signal.SIGKILL)

    async def _abandon(self) -> None:
        """Clean up after a failed start: no zombie, no task left behind."""
        self.stopping = True
        self.kill()
        await self._exit.wait()
        await self.close()

    def _signal(self, signum: int) -> None:
        if self._transport is not None and not self.exited:
            with contextlib.suppress(ProcessLookupError):
                self._transport.send_signal(signum)

    def close(self) -> asyncio.Task[None]:
        """Release everything the instance holds (once; awaitable). Kills a live process."""
        if self._closer is None:
            self._closer = asyncio.create_task(self._close(), name=f"{self.name}:close")
        return self._closer

    async def _close(self) -> None:
        self.ready = False
        if not self.exited:
            self.kill()
            await self._exit.wait()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STDERR_DRAIN)  # the last words of a crash
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None
        if self._transport is not None:
            self._transport.close()
        if self._address.startswith("unix:"):
            with contextlib.suppress(OSError):
                os.unlink(self._address[len("unix:") :].removeprefix("//"))

    # -- calls -------------------------------------------------------------------

    async def call(self, call: Call, timeout: float) -> bytes:
        """Run one call; return the result payload (b"" = nothing) or raise a ``Fault``.

        Past ``timeout`` the call fails with ``Runtime.Timeout`` at once and the
        instance is killed: a hung handler must not hold the function.
        """
        if not self._talk:
            return await self._call_unary(call, timeout)
        if self.exited:
            raise self._exit_fault()
        # The hot path: one message, one future, no timer per call, no logging.
        self._sequence = sequence = self._sequence + 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        deadline = loop.time() + timeout
        self._pending[sequence] = (future, deadline, call)
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._check_deadlines, timeout)
        self._outbox.put_nowait(self._message(call, sequence))
        return await future

    def _check_deadlines(self, timeout: float) -> None:
        """Fail the calls past their deadline and kill the instance; re-arm for the oldest left.

        One timer per instance rather than one per call: every call of a pool has
        the same timeout, so the oldest pending call has the nearest deadline.
        """
        self._watchdog = None
        if self.exited:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for future, deadline, call in self._pending.values():
            if deadline > now:
                self._watchdog = loop.call_at(deadline, self._check_deadlines, timeout)
                return
            if not future.done():
                future.set_exception(Fault(faults.TIMEOUT, f"{call.function} did not finish within {timeout:g}s"))
            # The entry stays: its slot is free only once the process is gone.
            self.kill(Fault(faults.INSTANCE_CRASHED, f"{self.name} was killed: a call on it timed out"))

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

    async def _call_unary(self, call: Call, timeout: float) -> bytes:
        # Baetyl's contract: a cancelled unary call is cancelled in the runtime too,
        # so its slot frees with the caller.
        if self.exited or self._stub is None:
            raise self._exit_fault()
        self._unary += 1
        try:
            reply = await self._stub.Call(self._message(call), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise await self._unary_fault(exc, call, timeout) from None
        finally:
            self._unary -= 1
            self.last_used = time.monotonic()
            if self._drained is not None and not self.in_flight:
                self._drained.set()
            if not self.exited:
                self._on_free()
        return reply.Payload

    async def _unary_fault(self, exc: grpc.aio.AioRpcError, call: Call, timeout: float) -> Fault:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and not self.exited:
            self.kill(Fault(faults.INSTANCE_CRASHED, f"{self.name} was killed: a call on it timed out"))
            return Fault(faults.TIMEOUT, f"{call.function} did not finish within {timeout:g}s")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED) or self.exited:
            if await _wait_any((self._exit,), STREAM_LOSS_GRACE):
                return self._exit_fault()
            return Fault(faults.UNAVAILABLE_FAULT, f"{self.name} is unreachable: {exc.details()}")
        return Fault.from_status(code.value[0], exc.details())

    async def _requests(self) -> AsyncIterator[function_pb2.FunctionMessage]:
        outbox, batching = self._outbox, self._batch
        carried: function_pb2.FunctionMessage | None | object = _NOTHING
        while True:
            message = await outbox.get() if carried is _NOTHING else carried
            carried = _NOTHING
            if message is None:
                return  # half-close: the runtime finishes and ends the stream
            assert isinstance(message, function_pb2.FunctionMessage)
            if not batching or outbox.empty():
                yield message
                continue
            # Calls queued while the last frame was going out travel together: a
            # stream write costs ~75 µs of the manager's CPU, whatever it carries.
            batch, size = [message], len(message.Payload)
            while not outbox.empty() and len(batch) < BATCH_MAX:
                queued = outbox.get_nowait()
                if queued is None or size + len(queued.Payload) > BATCH_BYTES:
                    carried = queued  # it goes next, alone or in the next frame
                    break
                batch.append(queued)
                size += len(queued.Payload)
            yield function_pb2.FunctionMessage(Batch=batch) if len(batch) > 1 else message

    async def _read_replies(self) -> None:
        assert self._stub is not None
        pending, free, now = self._pending, self._on_free, time.monotonic
        try:
            async for frame in self._stub.Talk(self._requests()):
                for reply in frame.Batch or (frame,):
                    entry = pending.pop(reply.Sequence, None)
                    if entry is None:
                        continue
                    future = entry[0]
                    if not future.done():  # done: its caller gave up (cancelled)
                        if reply.Code:
                            future.set_exception(Fault.from_status(reply.Code, reply.Error))
                        else:
                            future.set_result(reply.Payload)
                self.last_used = now()
                self.answered = True
                if self._drained is not None and not pending:
                    self._drained.set()
                free()
        except grpc.aio.AioRpcError as exc:
            await self._stream_lost(exc)
        self.ready = False  # the stream is over: no call can be answered any more

    async def _stream_lost(self, exc: grpc.aio.AioRpcError) -> None:
        self.ready = False
        if self.exited or self.stopping:
            return
        if await _wait_any((self._exit,), STREAM_LOSS_GRACE):
            return  # it died: the exit fails the calls, naming the status
        log.warning("%s: call stream failed: %s; killing it", self.name, exc.details())
        self.kill(Fault(faults.UNAVAILABLE_FAULT, f"{self.name}: call stream failed: {exc.details()}"))

    # -- supervision ---------------------------------------------------------------

    def _exit_fault(self) -> Fault:
        reason = self.kill_reason
        if reason is not None:
            return Fault(reason.error_type, reason.message)
        return Fault(faults.INSTANCE_CRASHED, f"{self.name} {self.describe_exit()}")

    def _exited(self) -> None:
        """The child watcher reaped the process (called on the loop, once)."""
        assert self._transport is not None
        self.returncode = self._transport.get_returncode()
        self.exited = True
        self.ready = False
        self._exit.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._pending:
            fault = self._exit_fault()
            for future, _, _ in self._pending.values():
                if not future.done():
                    future.set_exception(Fault(fault.error_type, fault.message))
            self._pending.clear()
        self._on_exit(self)

    async def _relay(self, stream: asyncio.StreamReader) -> None:
        """Relay the process's output into our log, line by line, until EOF."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # longer than the buffer: dropped, and reading goes on
                line = b"(a line too long to relay was dropped)"
            if not line:
                return self._output.close()
            self._output.relay(line)

    def _own(self, coroutine: object, what: str) -> None:
        task = asyncio.create_task(coroutine, name=f"{self.name}:{what}")  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def rss(self) -> int | None:
        """Resident memory of the process in bytes (None if it is gone)."""
        if self.exited:
            return None
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * PAGE_SIZE
        except (OSError, ValueError, IndexError):
            return None



async def _wait_any(events: Sequence[asyncio.Event], timeout: float) -> bool:
    """Wait until one of ``events`` is set or ``timeout`` passes; True if one was set."""
    if any(event.is_set() for event in events):
        return True
    if timeout <= 0:
        return False
    waiters = [asyncio.create_task(event.wait(), name="instance:wait") for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)
