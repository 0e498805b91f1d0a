"""The ``baetyl.Function`` service a Python-hosted runtime serves: Call and Talk.

``Talk`` answers each request by ``Sequence``, in any order; a failed call never
ends the stream. A call's outputs (``Output`` frames, see ``outputs.py``) go
out on the same stream ahead of its answer; a unary ``Call`` drops them. Requests may come several to a frame (``Batch``), and once a
client has sent one, answers that finish together share frames too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import grpc.aio

from edgefn.runtimes.faults import FUNCTION_NOT_FOUND, MESSAGE_TOO_LARGE, UNKNOWN_FAULT, Fault
from edgefn.runtimes.frames import take_batch
from edgefn.runtimes.outputs import Outputs
from edgefn.wire.function_pb2 import FunctionMessage

# The call, and where its outputs go (None: a unary Call, outputs are dropped).
Invoke = Callable[[FunctionMessage, "Outputs | None"], Awaitable[bytes]]

_SERVICE = "baetyl.Function"
_STATUS = {code.value[0]: code for code in grpc.StatusCode}

# A failed call's details stay well under grpc's 8 KiB trailer limit.
_MESSAGE_ROOM = 1500
_FRAMES = 16
_FRAME_ROOM = 200


def _too_large(size: int, limit: int) -> Fault:
    return Fault(MESSAGE_TOO_LARGE, f"the result is {size} bytes, above the {limit} byte limit")


def _as_fault(exc: BaseException) -> Fault:
    if not isinstance(exc, Fault):
        # Not the user's error (theirs are Faults already): a runtime bug, answered, not fatal.
        exc = Fault(UNKNOWN_FAULT, f"the runtime failed: {type(exc).__name__}: {exc}")
    return _bounded(exc)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _bounded(fault: Fault) -> Fault:
    """The fault cut to fit a gRPC status (trailers are capped at 8 KiB by default).

    A longer details string would turn the user's error into grpc's own
    RESOURCE_EXHAUSTED and lose it; a deep recursion keeps its outer and inner frames.
    """
    stack = fault.stack
    if len(fault.message) <= _MESSAGE_ROOM and len(stack) <= _FRAMES and all(len(f) <= _FRAME_ROOM for f in stack):
        return fault
    if len(stack) > _FRAMES:
        half = _FRAMES // 2
        stack = [*stack[:half], f"... {len(stack) - 2 * half} frames omitted", *stack[-half:]]
    frames = [_clip(frame, _FRAME_ROOM) for frame in stack]
    return Fault(fault.error_type, _clip(fault.message, _MESSAGE_ROOM), frames, fault.code)


class FunctionService:
    """``baetyl.Function``: Call and Talk over one Invoke; results above ``message_max`` fail.

    ``name`` is the function served: a request naming another function is
    answered NOT_FOUND, as Baetyl's runtimes do ("" serves whatever is asked).
    """

    def __init__(self, invoke: Invoke, message_max: int, name: str = "") -> None:
        self._invoke = _checked(invoke, name) if name else invoke
        self._max = message_max
        self._readers: set[asyncio.Task[None]] = set()
        self._closing = False

    def register(self, server: grpc.aio.Server) -> None:
        handlers = {
            "Call": grpc.unary_unary_rpc_method_handler(
                self.call,
                request_deserializer=FunctionMessage.FromString,
                response_serializer=FunctionMessage.SerializeToString,
            ),
            "Talk": grpc.stream_stream_rpc_method_handler(
                self.talk,
                request_deserializer=FunctionMessage.FromString,
                response_serializer=FunctionMessage.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
        server.add_registered_method_handlers(_SERVICE, handlers)

    def stop_reading(self) -> None:
        """Take no more calls from open Talk streams; those in flight are still answered."""
        self._closing = True
        for reader in list(self._readers):
            reader.cancel()

    async def call(self, request: FunctionMessage, context: grpc.aio.ServicerContext) -> FunctionMessage:
        """Unary Call: the reply is the request with its Payload replaced by the result."""
        try:
            payload = await self._invoke(request, None)
            if len(payload) > self._max:
                raise _too_large(len(payload), self._max)
        except Exception as exc:
            fault = _as_fault(exc)
            await context.abort(_STATUS[fault.code], fault.details())
        request.Payload = payload
        return request

    async def talk(self, requests: object, context: grpc.aio.ServicerContext) -> None:
        """Talk: answer each request by Sequence, in any order, until the client half-closes."""
        stream = _Stream(self._invoke, self._max, context)
        reader = asyncio.create_task(stream.read(), name="edgefn-talk-reader")
        # Not a finally in read(): a reader cancelled before its first step never runs its body,
        # and the writer would then wait forever (a SIGTERM just as a stream opened hung the drain).
        reader.add_done_callback(stream.reading_ended)
        self._readers.add(reader)
        if self._closing:
            reader.cancel()
        try:
            await stream.write()
        except asyncio.CancelledError:  # the client went away
            reader.cancel()
            stream.abandon()
            raise
        finally:
            self._readers.discard(reader)
        if not reader.cancelled():  # cancelled: a drain, and the stream ends well
            await reader  # done by now; surfaces a failed read as the stream's status


# At most this many answers share one Talk frame (and runtimes.frames.BATCH_BYTES).
BATCH_MAX = 256


def _checked(invoke: Invoke, name: str) -> Invoke:
    """``invoke``, refusing requests whose FunctionName is set and is not ``name``."""

    def run(request: FunctionMessage, outputs: Outputs | None) -> Awaitable[bytes]:
        wanted = request.FunctionName
        if wanted and wanted != name:
            return _failed(Fault(FUNCTION_NOT_FOUND, f"function {wanted!r} not found: this runtime serves {name!r}"))
        return invoke(request, outputs)

    return run


def _failed(fault: Fault) -> asyncio.Future[bytes]:
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    future.set_exception(fault)
    return future


class _Stream:
    """One Talk stream: a reader that starts calls, answers queued as they finish, one writer."""

    def __init__(self, invoke: Invoke, limit: int, context: grpc.aio.ServicerContext) -> None:
        self._invoke = invoke
        self._max = limit
        self._context = context
        # None, the last item: every answer is written, the stream may end.
        self._answers: asyncio.Queue[FunctionMessage | None] = asyncio.Queue()
        self._pending: set[asyncio.Future[bytes]] = set()
        self._reading = True
        self._batched = False
        self._outputs = Outputs(self._answers.put_nowait, limit, asyncio.get_running_loop())

    async def read(self) -> None:
        while True:
            request = await self._context.read()
            if request is grpc.aio.EOF:
                return
            if request.Batch:
                self._batched = True  # the client reads batches: answer in batches too
                for item in request.Batch:
                    self._start(item)
            else:
                self._start(request)

    def reading_ended(self, _reader: object = None) -> None:
        """No more requests (EOF, a drain, an error): the writer ends after the last answer."""
        self._reading = False
        if not self._pending:
            self._answers.put_nowait(None)

    def _start(self, request: FunctionMessage) -> None:
        started = self._invoke(request, self._outputs)
        # A runtime's Invoke returns a queued future (sync handlers) or a
        # coroutine (async ones), which becomes a task of this stream.
        future = started if asyncio.isfuture(started) else asyncio.create_task(started, name="edgefn-call")  # type: ignore[arg-type]
        self._pending.add(future)
        future.add_done_callback(lambda done, request=request: self._answer(request, done))

    def _answer(self, request: FunctionMessage, done: asyncio.Future[bytes]) -> None:
        self._pending.discard(done)
        if done.cancelled():
            return  # the stream is gone: nobody to answer
        exc = done.exception()
        if exc is None:
            payload = done.result()
            if len(payload) <= self._max:
                request.Payload = payload
                self._answers.put_nowait(request)
            else:
                exc = _too_large(len(payload), self._max)
        if exc is not None:
            fault = _as_fault(exc)
            request.Payload = b""
            request.Code = fault.code
            request.Error = fault.details()
            self._answers.put_nowait(request)
        if not self._reading and not self._pending:
            self._answers.put_nowait(None)

    async def write(self) -> None:
        answers, write = self._answers, self._context.write
        queued: list[FunctionMessage | None] = []
        while True:
            answer = queued.pop() if queued else await answers.get()
            if answer is None:
                return
            if not self._batched or answers.empty():
                await write(answer)
                continue
            # Answers that finished while the last write was going out travel together.
            batch, queued = take_batch(answers, answer, BATCH_MAX)
            await write(FunctionMessage(Batch=batch) if len(batch) > 1 else batch[0])

    def abandon(self) -> None:
        """The client went away: stop the async calls nobody can be answered about."""
        for future in list(self._pending):
            future.cancel()
