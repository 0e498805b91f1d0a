"""The gRPC side of a runtime instance: one channel, and calls over it.

Built-in runtimes are called over one ``Talk`` stream (many calls, answers
matched by ``Sequence``): a unary RPC per message costs a Python gRPC server
~184 µs of CPU, a stream message much less. Runtimes that only serve ``Call``
(Baetyl's contract, custom runtimes) are called with unary RPCs.

The client never decides an instance's fate itself: a call past its deadline,
or a stream that broke while the process lives, is reported to ``on_fault``
(the instance kills the process); the process's exit fails what is pending
through :meth:`FunctionClient.fail_all`.

A call's outputs (Talk ``Output`` frames, ahead of its answer) go to the
call's ``outputs`` sink as they arrive; once the call has failed (its deadline
passed, the process died) they are dropped: what a caller saw fail stays
silent. Unary calls have no outputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc
import grpc.aio

from edgefn.manager.message import Call
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault, NotStarted
from edgefn.runtimes.frames import take_batch
from edgefn.wire import function_pb2, function_pb2_grpc
from edgefn.wire.limits import size_options

log = logging.getLogger("edgefn.instance")

# At most this many calls share one Talk frame (runtimes whose handshake says "batch").
BATCH_MAX = 64
# A broken call stream usually means the process died: wait this long for its
# exit to name the fault before calling the instance unreachable.
STREAM_LOSS_GRACE = 2.0
# Readiness probes of a runtime without a handshake: first delay, doubling up to the last.
PROBE_FIRST = 0.01
PROBE_MAX = 0.5
# Weight of the latest call in ``FunctionClient.pace``.
PACE_WEIGHT = 0.1



# Takes one Output frame of a call (Payload, Topic, OutputQOS, OutputRetain), on the loop.
OutputSink = Callable[[function_pb2.FunctionMessage], None]


class _Pending:
    """A call in flight: the caller's future, the call, its timeout, when it started running
    (loop time; 0.0 while it waits in a sequential runtime's queue), and its outputs' sink."""

    __slots__ = ("future", "call", "timeout", "started", "outputs", "queued")

    def __init__(self, future: asyncio.Future[bytes], call: Call, timeout: float, started: float,
                 outputs: OutputSink | None) -> None:
        self.future, self.call, self.timeout, self.started, self.outputs = future, call, timeout, started, outputs
        self.queued = not started  # it waited in the runtime behind another call


class FunctionClient:
    """Calls to one runtime instance at ``address`` (Talk when it serves it, else unary Call).

    ``on_free`` is called each time a call's slot frees; ``on_fault`` with the
    fault that should end the instance (a timeout, a broken stream);
    ``on_ended`` when the Talk stream is over. ``exit`` is the process's exit
    event (a broken call waits briefly for it) and ``exit_fault`` names why it
    exited.
    """

    def __init__(
        self,
        name: str,
        address: str,
        message_max: int,
        *,
        exit: asyncio.Event,
        exit_fault: Callable[[], Fault],
        on_free: Callable[[], None],
        on_fault: Callable[[Fault], None],
        on_ended: Callable[[], None],
    ) -> None:
        self.name = name
        self.last_used = time.monotonic()
        self.answered = False  # set by the first answer on the Talk stream
        self.talk = False
        # The runtime runs one call at a time, in order (sync handlers): only the oldest
        # call in flight is running, and its timeout counts from when the one before ended.
        self.sequential = False
        # Seconds per call of a sequential runtime while it has calls queued: from
        # the answer before a call to the call's answer, a moving average.
        self.pace = 0.0
        self._address = address
        self._exit = exit
        self._exit_fault = exit_fault
        self._on_free = on_free
        self._on_fault = on_fault
        self._on_ended = on_ended
        self._channel = grpc.aio.insecure_channel(
            address,
            # One channel per instance: never share a subchannel with another instance.
            options=[*size_options(message_max), ("grpc.use_local_subchannel_pool", 1)],
        )
        self._stub = function_pb2_grpc.FunctionStub(self._channel)
        # sequence → pending call, oldest first. An entry stays until the runtime
        # answers or the process dies, even when its caller gave up: the runtime
        # is still running that call, so the slot is still taken.
        self._pending: dict[int, _Pending] = {}
        self._unary = 0
        self._sequence = 0
        self._watchdog: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[function_pb2.FunctionMessage | None] = asyncio.Queue()
        self._batch = False
        self._drained: asyncio.Event | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        """Calls this instance is running (or has queued)."""
        return len(self._pending) + self._unary

    def open_talk(self, batch: bool, sequential: bool) -> None:
        """Call over one Talk stream from now on (``batch``: the runtime takes Batch frames;
        ``sequential``: it runs its calls one at a time, in arrival order)."""
        self.talk, self._batch, self.sequential = True, batch, sequential
        self._reader = asyncio.create_task(self._read_replies(), name=f"{self.name}:talk")

    async def probe(self, timeout: float) -> None:
        """Wait until the runtime answers on its address (gRPC health if served, else a connection).

        Polled with backoff; raises ``TimeoutError`` after ``timeout`` seconds.
        """
        # Only runtimes without a handshake are probed: the others never import grpc_health.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = health_pb2_grpc.HealthStub(self._channel)
        delay = PROBE_FIRST
        async with asyncio.timeout(timeout):
            while True:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=max(delay, 0.1))
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                        return  # it answered: it serves, without the health service
                await asyncio.sleep(delay)
                delay = min(delay * 2, PROBE_MAX)

    async def call(self, call: Call, timeout: float, outputs: OutputSink | None = None) -> bytes:
        """Run one call; return the result payload (b"" = nothing) or raise a ``Fault``.

        ``outputs`` gets each output the call produces before its answer (Talk
        only: a unary Call returns the result alone).
        """
        if not self.talk:
            return await self._call_unary(call, timeout)
        # The hot path: one message, one future, no timer per call, no logging.
        self._sequence = sequence = self._sequence + 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        # Queued behind another call of a sequential runtime, it has not started yet.
        started = 0.0 if self.sequential and self._pending else loop.time()
        self._pending[sequence] = _Pending(future, call, timeout, started, outputs)
        if started and self._watchdog is None:
            self._watchdog = loop.call_at(started + timeout, self._check_deadlines)
        self._outbox.put_nowait(_message(call, sequence))
        return await future

    async def drained(self, timeout: float) -> None:
        """Wait up to ``timeout`` until no call is in flight."""
        if not self.in_flight or timeout <= 0:
            return
        self._drained = asyncio.Event()
        exit_wait = asyncio.create_task(self._exit.wait(), name=f"{self.name}:exit-wait")
        drained_wait = asyncio.create_task(self._drained.wait(), name=f"{self.name}:drained-wait")
        try:
            await asyncio.wait((exit_wait, drained_wait), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exit_wait.cancel()
            drained_wait.cancel()

    def half_close(self) -> None:
        """End the Talk stream's sending side: the runtime answers what it has, then ends it."""
        self._outbox.put_nowait(None)

    def fail_all(self, fault: Fault) -> None:
        """The process is gone: the calls it was running fail with ``fault``; those it had
        not started yet fail with :class:`NotStarted`."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for entry in self._pending.values():
            if entry.future.done():
                continue
            if entry.started:
                entry.future.set_exception(Fault(fault.error_type, fault.message))
            else:
                entry.future.set_exception(NotStarted(f"{self.name} ended before the call started ({fault.message})"))
        self._pending.clear()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._channel.close(grace=None)

    # -- Talk --------------------------------------------------------------------

    def _check_deadlines(self) -> None:
        """Fail the running calls past their timeout and end the instance; re-arm for the next.

        One timer per instance rather than one per call: every call of a pool has
        the same timeout, so the oldest running call has the nearest deadline.
        """
        self._watchdog = None
        if self._exit.is_set():
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for entry in self._pending.values():
            if not entry.started:
                return  # queued behind a running call: its clock has not started
            deadline = entry.started + entry.timeout
            if deadline > now:
                self._watchdog = loop.call_at(deadline, self._check_deadlines)
                return
            if not entry.future.done():
                entry.future.set_exception(
                    Fault(faults.TIMEOUT, f"{entry.call.function} did not finish within {entry.timeout:g}s"))
            # The entry stays: its slot is free only once the process is gone.
            self._on_fault(Fault(faults.INSTANCE_CRASHED, f"{self.name} was killed: a call on it timed out"))

    def _paced(self, answered: _Pending) -> None:
        """A sequential runtime answered a call: note its pace, start the next queued call."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if answered.queued:
            # Only a call that waited in the runtime measures its pace: one sent to an
            # idle runtime measures the round trip (and a shallow queue would make it
            # look slow, keep the queue shallow, and starve it).
            self.pace += (now - answered.started - self.pace) * PACE_WEIGHT
        for entry in self._pending.values():
            if not entry.started:
                entry.started = now
                if self._watchdog is None:
                    self._watchdog = loop.call_at(now + entry.timeout, self._check_deadlines)
            return

    async def _requests(self) -> AsyncIterator[function_pb2.FunctionMessage]:
        outbox, batching = self._outbox, self._batch
        queued: list[function_pb2.FunctionMessage | None] = []
        while True:
            message = queued.pop() if queued else await outbox.get()
            if message is None:
                return  # half-close: the runtime finishes and ends the stream
            if not batching or outbox.empty():
                yield message
                continue
            # Calls queued while the last frame was going out travel together.
            batch, queued = take_batch(outbox, message, BATCH_MAX)
            yield function_pb2.FunctionMessage(Batch=batch) if len(batch) > 1 else message

    async def _read_replies(self) -> None:
        pending, free, now = self._pending, self._on_free, time.monotonic
        try:
            async for frame in self._stub.Talk(self._requests()):
                for reply in frame.Batch or (frame,):
                    if reply.Output:
                        self._output(reply)
                        continue
                    entry = pending.pop(reply.Sequence, None)
                    if entry is None:
                        continue
                    if self.sequential:
                        self._paced(entry)
                    future = entry.future
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
        self._on_ended()  # no call can be answered any more

    def _output(self, reply: function_pb2.FunctionMessage) -> None:
        entry = self._pending.get(reply.Sequence)
        # Dropped when the caller has its outcome already (a timeout, a crash, a
        # cancel): after a failure, nothing more of that call is published.
        if entry is not None and entry.outputs is not None and not entry.future.done():
            entry.outputs(reply)

    async def _stream_lost(self, exc: grpc.aio.AioRpcError) -> None:
        if self._exit.is_set():
            return
        if await _wait(self._exit, STREAM_LOSS_GRACE):
            return  # it died: the exit fails the calls, naming the status
        log.warning("%s: call stream failed: %s; killing it", self.name, exc.details())
        self._on_fault(Fault(faults.UNAVAILABLE_FAULT, f"{self.name}: call stream failed: {exc.details()}"))

    # -- unary -------------------------------------------------------------------

    async def _call_unary(self, call: Call, timeout: float) -> bytes:
        # Baetyl's contract: a cancelled unary call is cancelled in the runtime too,
        # so its slot frees with the caller.
        self._unary += 1
        try:
            reply = await self._stub.Call(_message(call), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise await self._unary_fault(exc, call, timeout) from None
        finally:
            self._unary -= 1
            self.last_used = time.monotonic()
            if self._drained is not None and not self.in_flight:
                self._drained.set()
            if not self._exit.is_set():
                self._on_free()
        return reply.Payload

    async def _unary_fault(self, exc: grpc.aio.AioRpcError, call: Call, timeout: float) -> Fault:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and not self._exit.is_set():
            self._on_fault(Fault(faults.INSTANCE_CRASHED, f"{self.name} was killed: a call on it timed out"))
            return Fault(faults.TIMEOUT, f"{call.function} did not finish within {timeout:g}s")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED) or self._exit.is_set():
            if await _wait(self._exit, STREAM_LOSS_GRACE):
                return self._exit_fault()
            return Fault(faults.UNAVAILABLE_FAULT, f"{self.name} is unreachable: {exc.details()}")
        return Fault.from_status(code.value[0], exc.details())


def _message(call: Call, sequence: int = 0) -> function_pb2.FunctionMessage:
    return function_pb2.FunctionMessage(
        ID=call.id,
        QOS=call.qos,
        Topic=call.topic,
        Payload=call.payload,
        Timestamp=call.timestamp,
        FunctionName=call.function,
        FunctionInvokeID=call.invoke_id,
        Sequence=sequence,
        Retain=call.retain,
        ScheduledTime=call.scheduled_time,
    )


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``event``; True if it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
