"""Calling a Python handler with one FunctionMessage (SPEC §5).

event: empty payload → ``{}``; JSON → that value (scalars too); else the raw
bytes. context: messageQOS, messageTopic, messageRetain, messageTimestamp,
functionName, functionInvokeID, invokeid, and scheduledTime for a scheduled
call; it is a dict (Baetyl's handlers read it as one) with a ``publish`` method
for outputs before the result. A generator or async generator handler publishes
each value it yields, and its result is then empty. result: None/empty bytes → b""; bytes/bytearray as they are; anything
else → JSON (strings too), or
``Runtime.UnserializableResult``. A user exception becomes a Fault named
after its class, with the user's frames only.

``async def`` handlers run concurrently on the runtime's event loop. Sync
handlers run on one worker thread, one at a time in arrival order: the loop
stays free to read, answer and drain while a slow handler runs, and a handler
may itself call ``asyncio.run``. The thread is a daemon so a handler that never
returns cannot keep a forced exit waiting.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import queue
import threading
from collections.abc import Callable

import orjson
from edgefn.runtimes import exactjson
from edgefn.runtimes.faults import UNSERIALIZABLE_RESULT, Fault
from edgefn.runtimes.mailbox import mailbox
from edgefn.runtimes.outputs import Outputs, check_output
from edgefn.runtimes.python.loader import Handler, is_async, user_stack
from edgefn.runtimes.service import Invoke

from edgefn.wire.function_pb2 import FunctionMessage

_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS  # like json.dumps: {1: "a"} → {"1": "a"}


def make_invoke(handler: Handler, name: str, prefix: str) -> tuple[Invoke, bool]:
    """An Invoke for ``handler`` and whether its calls may overlap (True for ``async def``).

    ``name`` is the functionName used when a message carries none; ``prefix``
    is the codedir (with a trailing slash) whose frames a user's stack keeps.
    """
    call = _Call(handler, name, prefix)
    if is_async(handler):
        return call.run_async, True
    return _Worker(call.run_sync).submit, False


class Context(dict):  # type: ignore[type-arg]
    """The handler's context: Baetyl's dict of facts about the message, plus :meth:`publish`."""

    __slots__ = ("_outputs", "_sequence")

    def publish(self, payload: object, topic: str | None = None, qos: int | None = None,
                retain: bool = False) -> None:
        """Publish ``payload`` now, before the call's result (encoded like a result; None: nothing).

        ``topic`` defaults to the rule's publish topic, ``qos`` to its QoS (the
        input's QoS caps either). Raises ``ValueError``/``TypeError`` for a bad
        argument or payload. On a unary gRPC Call there is nowhere to publish:
        the output is dropped.
        """
        if problem := check_output(topic, qos, retain):
            raise ValueError(f"context.publish: {problem}")
        try:
            data = encode_result(payload)
        except Fault as fault:
            raise TypeError(f"context.publish: {fault.message}".replace("the handler returned", "got")) from None
        if data and self._outputs is not None:
            self._outputs.emit(self._sequence, data, topic or "", qos, retain)


def decode_event(payload: bytes) -> object:
    """The handler's event for a payload (SPEC §5)."""
    if not payload:
        return {}
    try:
        return exactjson.loads(payload)  # integers beyond 64 bits stay exact
    except exactjson.JSONDecodeError:
        return payload


def encode_result(result: object) -> bytes:
    """The payload for a handler's result (SPEC §5); raises ``Runtime.UnserializableResult``."""
    if result is None:
        return b""
    if type(result) is bytes:
        return result
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result)
    try:
        return orjson.dumps(result, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError as exc:
        # orjson refuses what json takes (integers beyond 64 bits): try it before giving up.
        try:
            return json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            message = f"the handler returned a {type(result).__name__} that cannot be JSON encoded: {exc}"
            raise Fault(UNSERIALIZABLE_RESULT, message) from None


class _Call:
    """One handler and the per-call conversions around it."""

    def __init__(self, handler: Handler, name: str, prefix: str) -> None:
        self._handler = handler
        self._name = name
        self._prefix = prefix

    def _arguments(self, request: FunctionMessage, outputs: Outputs | None) -> tuple[object, Context]:
        invoke_id = request.FunctionInvokeID
        context = Context(
            messageQOS=request.QOS,
            messageTopic=request.Topic,
            messageRetain=request.Retain,
            messageTimestamp=request.Timestamp,
            functionName=request.FunctionName or self._name,
            functionInvokeID=invoke_id,
            invokeid=invoke_id,
        )
        context._outputs = outputs
        context._sequence = request.Sequence
        if request.ScheduledTime:  # a scheduled call: its nominal fire time, in the schedule's zone
            context["scheduledTime"] = request.ScheduledTime
        return decode_event(request.Payload), context

    def _fault(self, exc: BaseException) -> Fault:
        return Fault(type(exc).__name__, str(exc), user_stack(exc.__traceback__, self._prefix))

    def run_sync(self, request: FunctionMessage, outputs: Outputs | None,
                 loop: asyncio.AbstractEventLoop) -> bytes:
        """Run on the worker thread."""
        event, context = self._arguments(request, outputs)
        try:
            result = self._handler(event, context)
            if inspect.isgenerator(result):  # before iscoroutine, which takes generators too
                for value in result:
                    context.publish(value)
                result = None
            elif asyncio.iscoroutine(result):  # a sync wrapper around an async function
                result = asyncio.run_coroutine_threadsafe(result, loop).result()
        except BaseException as exc:  # SystemExit from a handler is its answer, not ours
            raise self._fault(exc) from None
        return encode_result(result)

    async def run_async(self, request: FunctionMessage, outputs: Outputs | None) -> bytes:
        event, context = self._arguments(request, outputs)
        try:
            produced = self._handler(event, context)
            if inspect.isasyncgen(produced):
                async for value in produced:
                    context.publish(value)
                result = None
            else:
                result = await produced  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # SystemExit too: it must not end the loop
            raise self._fault(exc) from None
        return encode_result(result)


def _settle(future: asyncio.Future[bytes], result: bytes | None, exc: BaseException | None) -> None:
    if future.done():
        return  # cancelled meanwhile: the caller is gone
    if exc is None:
        future.set_result(result)  # type: ignore[arg-type]
    else:
        future.set_exception(exc)


_Job = tuple["asyncio.Future[bytes]", FunctionMessage, "Outputs | None"]


class _Worker:
    """One thread running a sync handler's calls in the order they were submitted."""

    def __init__(self, run: Callable[[FunctionMessage, Outputs | None, asyncio.AbstractEventLoop], bytes]) -> None:
        self._run = run
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="edgefn-handler", daemon=True).start()

    def submit(self, request: FunctionMessage, outputs: Outputs | None) -> asyncio.Future[bytes]:
        """Queue a call now (arrival order is submission order) and return its future."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, request, outputs))
        return future

    def _serve(self) -> None:
        run, jobs = self._run, self._jobs
        while True:
            future, request, outputs = jobs.get()
            if future.cancelled():
                continue  # not started yet and nobody waits for it any more
            loop = future.get_loop()
            post = mailbox(loop).post
            try:
                # Outputs reach the loop through the same mailbox as the settling
                # below: they are queued before the answer.
                result = run(request, outputs, loop)
            except BaseException as exc:
                post(_settle, future, None, exc)
            else:
                post(_settle, future, result, None)
