"""The manager's gRPC server for direct calls: ``baetyl.Function/Call`` on ``server.address``.

A direct call goes through the same runner (pool or SQL engine) as MQTT
traffic, exactly once: it is never retried and never published. A failure ends
the RPC with the fault's gRPC code (SPEC §4) and, as the details string, the
full error envelope JSON of SPEC §7 (docs/grpc.md shows how a client reads it).

Alongside ``baetyl.Function`` the server answers the standard health service
(service ``""`` and ``baetyl.Function``: the server; a function's name: that
function) and server reflection, so ``grpcurl`` works without the proto file.

``CallStream`` is ``Call`` with the call's outputs: each is streamed as it is
produced (``Output`` set, with the ``Topic``, ``OutputQOS`` and ``OutputRetain``
the function asked for), then the result; a failure ends the stream with the
same status and envelope as ``Call``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import stat
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from edgefn.manager import trailer
from edgefn.manager.addresses import unix_path
from edgefn.manager.admission import Admission, running
from edgefn.manager.auth import TokenAuth
from edgefn.manager.config import ServerConfig
from edgefn.manager.errors import EdgefnError
from edgefn.manager.message import Call, envelope_fields
from edgefn.manager.runners import Runner
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from edgefn.wire import function_pb2, function_pb2_grpc
from edgefn.wire.function_pb2 import FunctionMessage
from edgefn.wire.limits import DEFAULT_MESSAGE_MAX, size_options

log = logging.getLogger("edgefn.server")

SERVICE = function_pb2.DESCRIPTOR.services_by_name["Function"].full_name  # "baetyl.Function"

_STATUS = {code.value[0]: code for code in grpc.StatusCode}
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ServerError(EdgefnError):
    """The gRPC server cannot start (address taken or invalid, unreadable TLS files)."""


class FunctionServer:
    """``baetyl.Function`` over the manager's runners, plus health and reflection.

    ``runners`` is the manager's live mapping: each call looks its function up
    anew, so a hot reload that swaps entries takes effect at once (call
    :meth:`refresh` afterwards to update health watchers).
    """

    def __init__(self, config: ServerConfig, runners: Mapping[str, Runner]) -> None:
        self.config = config
        self._runners = runners
        self._server: grpc.aio.Server | None = None
        self._health = _Health(runners)
        self._socket: Path | None = unix_path(config.address)
        self.address = config.address

    async def start(self) -> None:
        """Bind ``server.address`` and start serving; raise ``ServerError`` saying why not."""
        credentials = self._credentials()
        if self._socket is not None:
            _clear_stale_socket(self._socket, self.config.address)
        largest = max((r.message_max for r in self._runners.values()), default=DEFAULT_MESSAGE_MAX)
        server = grpc.aio.server(
            interceptors=[TokenAuth(self.config.token)] if self.config.token else [],
            # A second manager on the same port must fail, not share it silently: no SO_REUSEPORT.
            options=[*size_options(largest), ("grpc.so_reuseport", 0)],
        )
        function_pb2_grpc.add_FunctionServicer_to_server(_FunctionService(self._runners), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection((SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                                             reflection.SERVICE_NAME), server)
        port = self._bind(server, credentials)
        await server.start()
        self._server = server
        if self._socket is None:
            self.address = f"{self.config.address.rpartition(':')[0]}:{port}"
        await self.refresh()
        log.info("gRPC server listening on %s%s", self.address, self._tls_note())

    def _bind(self, server: grpc.aio.Server, credentials: grpc.ServerCredentials | None) -> int:
        try:
            if credentials is None:
                port = server.add_insecure_port(self.config.address)
            else:
                port = server.add_secure_port(self.config.address, credentials)
        except RuntimeError:
            raise ServerError(f"server.address {self.config.address}: cannot listen there: "
                              f"{_why_not(self.config.address)}") from None
        return port

    def _credentials(self) -> grpc.ServerCredentials | None:
        config = self.config
        if config.cert is None and config.key is None:
            return None
        if config.cert is None or config.key is None:
            raise ServerError("server.cert and server.key go together: TLS needs both")
        cert, key = _read(config.cert, "server.cert"), _read(config.key, "server.key")
        ca = _read(config.ca, "server.ca") if config.ca is not None else None
        check_pem(config)  # grpc would only say that it cannot listen
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)

    def _tls_note(self) -> str:
        token = ", bearer token" if self.config.token else ""
        if self.config.ca is not None:
            return f" (mutual TLS{token})"
        if self.config.cert is not None:
            return f" (TLS{token})"
        return f" (no TLS: server.insecure{token})" if self.config.insecure else f" ({token[2:]})" if token else ""

    async def refresh(self) -> None:
        """Publish each function's health (after a hot reload changed the runners)."""
        await self._health.sync()

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, stop taking calls, let those in flight finish within ``grace``."""
        if self._server is None:
            return
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        self._server = None
        if self._socket is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket.unlink()


class _FunctionService(function_pb2_grpc.FunctionServicer):
    """``Call``: one request → one runner call (never retried, never published)."""

    def __init__(self, runners: Mapping[str, Runner]) -> None:
        self._runners = runners
        self._admission = Admission()

    async def Call(self, request: FunctionMessage, context: grpc.aio.ServicerContext) -> FunctionMessage:  # noqa: N802
        """One call, its result only (Baetyl's contract: outputs are not returned)."""
        call, runner = await self._admit(request, context)
        with self._admission.hold(call.function, running(runner)) as refused:
            if refused is not None:
                await _refuse(context, call, runner, refused)
            try:
                result = await runner.call(call)
            except Exception as exc:
                await _fail(context, call, runner, exc)
        return _result(call, result)

    async def CallStream(self, request: FunctionMessage, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        """One call: each output as it is produced (``Output`` set), then the result."""
        call, runner = await self._admit(request, context)
        with self._admission.hold(call.function, running(runner)) as refused:
            if refused is not None:
                await _refuse(context, call, runner, refused)
            frames: asyncio.Queue[FunctionMessage | None] = asyncio.Queue()

            def output(frame: FunctionMessage) -> None:
                frames.put_nowait(FunctionMessage(
                    ID=call.id, Topic=frame.Topic, Payload=frame.Payload, FunctionName=call.function,
                    FunctionInvokeID=call.invoke_id, Output=True, OutputQOS=frame.OutputQOS,
                    OutputRetain=frame.OutputRetain))

            running_call = asyncio.create_task(runner.call(call, output), name=f"server:{call.function}:stream")
            running_call.add_done_callback(lambda _: frames.put_nowait(None))  # after every output it made
            try:
                while (frame := await frames.get()) is not None:
                    await context.write(frame)
                result = running_call.result()
            except Exception as exc:
                await _fail(context, call, runner, exc)
            finally:
                if not running_call.done():  # the client went away
                    running_call.cancel()
                    await asyncio.gather(running_call, return_exceptions=True)
        await context.write(_result(call, result))

    async def _admit(self, request: FunctionMessage, context: grpc.aio.ServicerContext) -> tuple[Call, Runner]:
        call = _direct_call(request)
        runner = self._runners.get(call.function)
        if runner is None:
            await _not_found(self._runners, call, context)
        return call, runner


def _result(call: Call, payload: bytes) -> FunctionMessage:
    return FunctionMessage(
        ID=call.id, QOS=call.qos, Topic=call.topic, Payload=payload, Timestamp=call.timestamp,
        FunctionName=call.function, FunctionInvokeID=call.invoke_id,
    )


async def _refuse(context: grpc.aio.ServicerContext, call: Call, runner: Runner, why: str) -> NoReturn:
    busy = Fault(faults.UNAVAILABLE_FAULT, why, code=faults.RESOURCE_EXHAUSTED)
    await _abort(context, call, busy, runner.runtime, runner.message_max, attempts=0)


async def _fail(context: grpc.aio.ServicerContext, call: Call, runner: Runner, exc: Exception) -> NoReturn:
    """End a failed direct call with its envelope; a manager bug answers the client too, never hangs it."""
    if not isinstance(exc, Fault):
        log.exception("direct call of %s failed", call.function, exc_info=exc)
        exc = Fault(faults.UNKNOWN_FAULT, f"the manager failed: {type(exc).__name__}: {exc}", code=faults.INTERNAL)
    await _abort(context, call, exc, runner.runtime, runner.message_max)


def _direct_call(request: FunctionMessage) -> Call:
    return Call(
        id=request.ID,
        qos=request.QOS,
        topic=request.Topic,
        payload=request.Payload,
        timestamp=request.Timestamp or int(time.time()),
        function=request.FunctionName,
        invoke_id=request.FunctionInvokeID or str(uuid.uuid4()),
        retain=request.Retain,
    )


async def _not_found(runners: Mapping[str, Runner], call: Call, context: grpc.aio.ServicerContext) -> NoReturn:
    known = ", ".join(sorted(runners)) or "none"
    what = f"no function named {call.function!r}" if call.function else "no FunctionName in the request"
    fault = Fault(faults.FUNCTION_NOT_FOUND, f"{what} (functions: {known})")
    await _abort(context, call, fault, "", None, attempts=0)


async def _abort(
    context: grpc.aio.ServicerContext,
    call: Call,
    fault: Fault,
    runtime: str,
    payload_max: int | None,
    *,
    attempts: int = 1,
) -> NoReturn:
    body = envelope_fields(call, fault, runtime=runtime, attempts=attempts, payload_max=payload_max)
    await context.abort(_STATUS.get(fault.code, grpc.StatusCode.UNKNOWN), trailer.fit(body))


class _Health(HealthServicer):
    """Health for ``""``/``baetyl.Function`` (the server) and each function by its name.

    ``Check`` reads the live runners, so a function added or removed by a hot
    reload answers correctly at once; ``Watch`` streams follow :meth:`sync`.
    """

    def __init__(self, runners: Mapping[str, Runner]) -> None:
        super().__init__()
        self._runners = runners
        self._stopped = False

    def _status(self, service: str) -> int | None:
        if service in ("", SERVICE) or service in self._runners:
            return _NOT_SERVING if self._stopped else _SERVING
        return None

    async def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> object:  # noqa: N802
        status = self._status(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def sync(self) -> None:
        for name in (SERVICE, *self._runners):
            await self.set(name, _SERVING)
        for name in [n for n in self._server_status if n not in ("", SERVICE) and n not in self._runners]:
            await self.set(name, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)

    async def enter_graceful_shutdown(self) -> None:
        self._stopped = True
        await super().enter_graceful_shutdown()


def _clear_stale_socket(path: Path, address: str) -> None:
    """Remove a socket file left by a dead process; refuse to steal a live one or clobber a file."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ServerError(f"server.address {address}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        path.unlink()  # nobody listens: a stale socket from a process that died
        return
    except OSError as exc:
        raise ServerError(f"server.address {address}: cannot check {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise ServerError(f"server.address {address}: another process is listening on {path}")


def _why_not(address: str) -> str:
    """Why grpc could not bind ``address`` (grpc only logs the reason): retry with a plain socket."""
    path = unix_path(address)
    if path is not None:
        return "no such folder" if not path.parent.is_dir() else "the socket could not be created"
    host, _, port = address.rpartition(":")
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, ValueError) as exc:
        return f"cannot resolve the host ({exc})"
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(where)
        except OSError as exc:
            return exc.strerror or str(exc)
    return "grpc refused it (GRPC_VERBOSITY=debug shows why)"


def check_pem(config: ServerConfig) -> None:
    """Raise ServerError naming the key when the TLS files are not PEM or do not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.cert, config.key)  # type: ignore[arg-type]
    except (OSError, ssl.SSLError) as exc:
        raise ServerError(f"server.cert {config.cert} with server.key {config.key}: not a PEM certificate "
                          f"and its matching key: {exc}") from None
    if config.ca is not None:
        try:
            context.load_verify_locations(cafile=config.ca)
        except (OSError, ssl.SSLError) as exc:
            raise ServerError(f"server.ca {config.ca}: not a PEM CA certificate: {exc}") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ServerError(f"{what} {path}: cannot read it: {exc.strerror}") from None
