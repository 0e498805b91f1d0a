"""What every Python-hosted runtime shares: the runtime instance protocol.

A runtime (python, sql) supplies one thing, a ``load`` function that turns its
options into an :data:`Invoke`; this module does the rest of
docs/architecture.md's "runtime instance protocol": options from flags and the
environment, the handshake line, fd 1 pointed at fd 2, the parent-pipe watch,
the gRPC server (``Call`` and ``Talk``), the message size limit, and draining on
SIGTERM/SIGINT.

Public API::

    Invoke = Callable[[FunctionMessage, Outputs | None], Awaitable[bytes]]
    Load = Callable[[RuntimeOptions], tuple[Invoke, bool]]
    parse_options(argv, runtime, env=os.environ) -> RuntimeOptions   # SystemExit(2) on bad usage
    serve(options, load) -> int                                      # the process's exit status
    run(argv, runtime, load) -> int                                  # parse_options + serve

An ``Invoke`` returns the result payload (``b""``: nothing to publish) or raises
a :class:`~edgefn.runtimes.faults.Fault`. Its ``Outputs`` (None on a unary Call)
takes what the call publishes before its answer. It is called in arrival order; when it
returns a future (rather than a coroutine) the work must already be queued. The
``bool`` from ``load`` says whether calls may overlap: a non-concurrent Invoke
runs its calls one at a time in the order it was called (e.g. on one worker
thread); it is reported in the handshake as ``"concurrent"`` so the manager can
size the instance's concurrency.

Cold start matters (the manager spawns instances on demand), so this module
imports only what serving needs: no yaml, no logging setup, no manager code;
and ``--check`` (what ``edgefn check`` and ``run``'s start-up check spawn) only
loads the handler: asyncio, grpc and protobuf are imported when serving starts.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from edgefn.manager.addresses import parse_target, unix_path
from edgefn.manager.units import parse_size
from edgefn.runtimes.faults import UNAVAILABLE_FAULT, Fault
from edgefn.runtimes.orphan import wait_for_eof
from edgefn.wire.limits import DEFAULT_MESSAGE_MAX, size_options

if TYPE_CHECKING:  # serving imports them: a --check never does
    import asyncio

    from edgefn.runtimes.service import Invoke


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOAD = 3

# The runtime finishes every call in flight however long it takes: deadlines are
# the manager's (it kills an instance that outlives its shutdown timeout), and a
# second signal forces the exit. grpc wants a number, so "forever" is a day.
DRAIN_GRACE = 86400.0

METHODS = ("Call", "Talk")


@dataclass(frozen=True)
class RuntimeOptions:
    """One runtime instance's settings, validated by :func:`parse_options`.

    ``address`` is a gRPC bind target ("" in check mode); ``watch_parent`` is
    ``EDGEFN_PARENT_PIPE=1``: stdin is a pipe whose EOF means the manager is gone.
    """

    address: str
    name: str
    handler: str
    codedir: str
    message_max: int
    check: bool = False
    watch_parent: bool = False

    def __post_init__(self) -> None:
        if self.message_max <= 0:
            raise ValueError(f"message_max must be positive, not {self.message_max}")
        if not self.check and not self.address:
            raise ValueError("an address is needed unless checking")


Load = Callable[[RuntimeOptions], tuple["Invoke", bool]]


def parse_options(argv: Sequence[str], runtime: str, env: Mapping[str, str] = os.environ) -> RuntimeOptions:
    """Build a runtime's options: flags win over ``EDGEFN_*``, then ``BAETYL_SERVICE_INSTANCE_ADDRESS``.

    Bad usage prints a message and raises ``SystemExit(2)`` (argparse's way).
    """
    parser = argparse.ArgumentParser(
        prog=f"edgefn runtime {runtime}",
        description=f"Serve one {runtime} function as baetyl.Function over gRPC (an edgefn runtime instance).",
    )
    address = env.get("EDGEFN_INSTANCE_ADDRESS") or env.get("BAETYL_SERVICE_INSTANCE_ADDRESS") or ""
    parser.add_argument("--address", default=address, help="unix:///abs.sock, unix:rel.sock, host:port, tcp://host:port")
    parser.add_argument("--name", default=env.get("EDGEFN_FUNCTION_NAME", ""), help="the function's name")
    parser.add_argument(
        "--handler",
        default=env.get("EDGEFN_FUNCTION_HANDLER", ""),
        help="module.attribute (python, node); the SQL statement (sql)",
    )
    parser.add_argument("--codedir", default=env.get("EDGEFN_FUNCTION_CODEDIR", "."), help="the function's folder")
    parser.add_argument(
        "--message-max",
        default=env.get("EDGEFN_MESSAGE_MAX", str(DEFAULT_MESSAGE_MAX)),
        help="largest payload in or out, bytes or with b/k/m/g (default 4m)",
    )
    parser.add_argument("--check", action="store_true", help="load the handler, print the handshake, exit 0 or 3")
    args = parser.parse_args(list(argv))
    if not args.handler:
        parser.error("no handler: pass --handler or set EDGEFN_FUNCTION_HANDLER")
    try:
        message_max = _message_max(args.message_max)
        target = parse_target(args.address) if args.address else ""
        return RuntimeOptions(
            address=target,
            name=args.name,
            handler=args.handler,
            codedir=args.codedir,
            message_max=message_max,
            check=args.check,
            watch_parent=env.get("EDGEFN_PARENT_PIPE") == "1",
        )
    except ValueError as exc:
        parser.error(str(exc))
        raise  # parser.error never returns; this keeps type checkers content


def _message_max(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise ValueError(f"bad --message-max (EDGEFN_MESSAGE_MAX): {exc}") from None
    if size <= 0:
        raise ValueError(f"bad --message-max (EDGEFN_MESSAGE_MAX): must be positive, got {text!r}")
    return size


def run(argv: Sequence[str], runtime: str, load: Load) -> int:
    """``edgefn runtime <runtime> ARGV``: parse the options, serve, return the exit status."""
    try:
        options = parse_options(argv, runtime)
    except SystemExit as exc:  # --help (0) or bad usage (2): a status, not an exception, for callers
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return serve(options, load)


def serve(options: RuntimeOptions, load: Load) -> int:
    """Load the function, serve it until SIGTERM/SIGINT (or check it), return the exit status.

    0: served and drained, or checked; 1: could not listen; 3: the handler did
    not load (the handshake says why). Takes over this process's fd 1.
    """
    if options.watch_parent and not options.check:
        _watch_parent()
    handshake = _Handshake(options)
    try:
        invoke, concurrent = load(options)
    except Fault as fault:
        handshake.failed(fault)
        return EXIT_LOAD
    # What is loaded now lives as long as the process: keep it out of every later collection.
    gc.freeze()
    if options.check:
        handshake.ready(concurrent, "")
        return EXIT_OK
    import asyncio

    return asyncio.run(_serve(options, invoke, concurrent, handshake))


class _Handshake:
    """The one JSON line a runtime owes its parent on stdout.

    Taken at start, so anything the user's module prints while it imports
    already goes to stderr and cannot be mistaken for the handshake.
    """

    def __init__(self, options: RuntimeOptions) -> None:
        self._options = options
        if sys.stdout is not None:
            sys.stdout.flush()
        self._fd = os.dup(1)
        os.dup2(2, 1)
        # -I ignores PYTHONUNBUFFERED: make prints reach the manager's log line by line.
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)

    def ready(self, concurrent: bool, address: str) -> None:
        line = {"ready": True, "pid": os.getpid(), "methods": list(METHODS), "concurrent": concurrent, "batch": True}
        self._write({**line, "address": address} if address else line)

    def failed(self, fault: Fault) -> None:
        self._write({"ready": False, **fault.to_dict()})
        if self._options.watch_parent:
            return  # the manager logs the handshake's fault itself: once per start, not twice
        what = f"handler {self._options.handler!r} in {self._options.codedir!r}"
        stack = "".join(f"\n  {frame}" for frame in fault.stack)
        sys.stderr.write(f"edgefn runtime: cannot serve {what}: {fault.error_type}: {fault.message}{stack}\n")
        sys.stderr.flush()

    def _write(self, line: dict[str, object]) -> None:
        data = orjson.dumps(line) + b"\n"
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except BrokenPipeError:
            pass  # nobody reads stdout: the handshake is for a parent that may not exist
        finally:
            os.close(self._fd)


def _watch_parent() -> None:
    """Exit at once when stdin (a pipe the manager holds open) reaches EOF.

    A thread rather than the event loop: it must fire even while the loop is
    busy or the handler is still importing.
    """

    def watch() -> None:
        wait_for_eof()
        if os.getpgid(0) == os.getpid():  # we lead our group: take the handler's children along
            os.killpg(0, signal.SIGKILL)
        os._exit(EXIT_OK)

    threading.Thread(target=watch, name="edgefn-parent-watch", daemon=True).start()


async def _serve(options: RuntimeOptions, invoke: Invoke, concurrent: bool, handshake: _Handshake) -> int:
    import grpc.aio

    from edgefn.runtimes.service import FunctionService

    stopping = _catch_signals()
    service = FunctionService(invoke, options.message_max, options.name)
    # Two instances must never share a port silently: no SO_REUSEPORT.
    server = grpc.aio.server(options=[*size_options(options.message_max), ("grpc.so_reuseport", 0)])
    service.register(server)
    try:
        port = server.add_insecure_port(options.address)
    except RuntimeError as exc:
        handshake.failed(Fault(UNAVAILABLE_FAULT, f"cannot listen on {options.address!r}: {exc}"))
        return EXIT_FAILED
    await server.start()
    handshake.ready(concurrent, _bound(options.address, port))
    await stopping.wait()
    # One line for the manager's log (and for tests: the drain has begun).
    sys.stderr.write(f"edgefn runtime: stopping, finishing calls in flight (pid {os.getpid()})\n")
    sys.stderr.flush()
    service.stop_reading()
    await server.stop(DRAIN_GRACE)
    return EXIT_OK


def _catch_signals() -> asyncio.Event:
    """The first SIGTERM/SIGINT sets the returned event (drain); a second one exits at once."""
    import asyncio

    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():
            os._exit(EXIT_FAILED)
        stopping.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    return stopping


def _bound(target: str, port: int) -> str:
    """The address actually listened on: a tcp port 0 becomes the chosen port, a
    relative unix path absolute (the handshake's reader has another working directory)."""
    path = unix_path(target)
    if path is not None:
        return f"unix://{os.path.abspath(path)}"
    return f"{target.rpartition(':')[0]}:{port}"
