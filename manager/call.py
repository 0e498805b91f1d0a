"""``edgefn call NAME``: call one function once, directly (SPEC §2).

Two ways: through a gRPC address (a manager's ``server.address``, or a runtime
instance's own address: both serve ``baetyl.Function/Call``), or ``--config``:
the function runs locally in a one-shot pool (or the SQL engine) with no broker
and no server, the "does my function work" loop.

A call's outputs (``context.publish``, yielded values) go to stdout as they
arrive, each on its own line, before the result: through a manager with its
``CallStream`` method, locally through the runner. A runtime's own address
serves only Baetyl's unary ``Call``: there the result comes alone.

Exit status: 0 and the result's bytes on stdout (nothing for an empty result);
1 and the error envelope JSON as the last line of stderr (the function failed,
timed out, or could not load); 2 for usage and transport errors (bad flags,
unreadable ``--data`` file, unreachable address, unknown function, bad config).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from edgefn.manager.config import Config, FunctionConfig
from edgefn.manager.errors import EdgefnError
from edgefn.manager.message import Call, envelope
from edgefn.manager.units import parse_duration
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault

if TYPE_CHECKING:
    from edgefn.manager.runners import Runner

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 30.0
# After the one call, the local pool's instance has nothing in flight: it only needs to exit.
STOP_GRACE = 5.0


class UsageError(EdgefnError):
    """Exit 2: bad usage, a transport failure, an unknown function, a bad config."""


class CallFailed(Exception):
    """Exit 1: the function failed; ``envelope`` is the JSON error envelope."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body.decode(errors="replace"))
        self.envelope = body


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``call`` subcommand to ``edgefn``'s subparsers; its handler is :func:`run`."""
    parser = subparsers.add_parser(
        "call",
        help="call a function once: through a gRPC address, or locally from a config",
        description="Call a function once. The result goes to stdout (exit 0), a failure's error envelope "
        "to stderr (exit 1); usage and transport errors exit 2.",
    )
    parser.add_argument("name", help="the function's name")
    parser.add_argument("--data", default="", metavar="JSON|@file|@-",
                        help="the payload: text as is, @file for a file's bytes, @- for stdin (default: empty)")
    parser.add_argument("--topic", default="", help="the message's topic (context.messageTopic)")
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=0, help="the message's QoS (context.messageQOS)")
    parser.add_argument("--timeout", type=_duration, default=DEFAULT_TIMEOUT, metavar="DURATION",
                        help="give up after this long, like 500ms or 30s (default 30s)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--address", help=f"a manager's server.address or a runtime's address: host:port, "
                       f"tcp://host:port, unix:///abs/path (default {DEFAULT_ADDRESS})")
    where.add_argument("--config", metavar="CONFIG",
                       help="run the function locally from this config: no broker, no server")
    parser.add_argument("--ca", type=Path, help="TLS: the CA that signed the server's certificate")
    parser.add_argument("--cert", type=Path, help="mutual TLS: this client's certificate (with --key)")
    parser.add_argument("--key", type=Path, help="mutual TLS: this client's private key (with --cert)")
    parser.add_argument("--token", default=os.environ.get("EDGEFN_TOKEN") or None,
                        help="the server's bearer token (server.token; default: $EDGEFN_TOKEN)")
    parser.set_defaults(handler=run)
    return parser


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return seconds


def run(args: argparse.Namespace) -> int:
    """Run ``edgefn call`` with parsed ``args``; return the exit status."""
    try:
        call = Call(id=0, qos=args.qos, topic=args.topic, payload=_payload(args.data), timestamp=int(time.time()),
                    function=args.name, invoke_id=str(uuid.uuid4()))
        if args.config:
            result = _call_local(args, call)
        else:
            result = _call_remote(args, call)
    except CallFailed as failed:
        sys.stderr.flush()  # the handler's relayed output first, the envelope last
        sys.stderr.buffer.write(failed.envelope + b"\n")
        sys.stderr.flush()
        return EXIT_FAILED
    except UsageError as exc:
        print(f"edgefn call: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    sys.stdout.buffer.write(result)
    sys.stdout.flush()
    return EXIT_OK


def _payload(data: str) -> bytes:
    """``--data``: text is sent as its UTF-8 bytes (the runtime parses JSON), ``@file``/``@-`` as bytes."""
    if data == "@-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise UsageError(f"--data {data}: cannot read it: {exc.strerror}") from None
    return data.encode()


def failure_envelope(call: Call, fault: Fault) -> bytes:
    """An envelope for a failure that came without one (a runtime's bare details, a client deadline)."""
    return orjson.dumps({**fault.to_dict(), "functionMessage": call.function_message()})


# -- --address: one unary Call over gRPC -----------------------------------------------


def _call_remote(args: argparse.Namespace, call: Call) -> bytes:
    import grpc

    from edgefn.wire import function_pb2, function_pb2_grpc

    address = args.address or DEFAULT_ADDRESS
    target = _target(address)
    # No client-side size limit: the server's (the function's message.length.max) is the one that counts.
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    credentials = _credentials(args)
    channel = (grpc.secure_channel(target, credentials, options) if credentials is not None
               else grpc.insecure_channel(target, options))
    request = function_pb2.FunctionMessage(
        ID=call.id, QOS=call.qos, Topic=call.topic, Payload=call.payload, Timestamp=call.timestamp,
        FunctionName=call.function, FunctionInvokeID=call.invoke_id,
    )
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    with channel:
        stub = function_pb2_grpc.FunctionStub(channel)
        try:
            return _streamed(stub, request, args.timeout, metadata)
        except _NoStream:
            pass
        except grpc.RpcError as exc:
            raise _failure(call, exc.code(), exc.details(), address, args.timeout) from None  # type: ignore[attr-defined]
        try:
            reply = stub.Call(request, timeout=args.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise _failure(call, exc.code(), exc.details(), address, args.timeout) from None  # type: ignore[attr-defined]
    return bytes(reply.Payload)


class _NoStream(Exception):
    """The address does not serve CallStream (a runtime instance): fall back to Call."""


def _streamed(stub: Any, request: Any, timeout: float, metadata: list[tuple[str, str]] | None) -> bytes:
    """CallStream: print each output as it arrives; return the result's payload."""
    import grpc

    replies = stub.CallStream(request, timeout=timeout, metadata=metadata)
    result = b""
    try:
        for reply in replies:
            if reply.Output:
                print_output(reply.Payload)
            else:
                result = bytes(reply.Payload)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
            raise _NoStream from None  # nothing ran: Call runs it once
        raise
    return result


def print_output(payload: bytes) -> None:
    """One output of the call on stdout, on its own line, at once."""
    sys.stdout.buffer.write(payload + b"\n")
    sys.stdout.flush()


def _target(address: str) -> str:
    """A gRPC target for ``--address`` (the forms a runtime instance accepts)."""
    from edgefn.manager.addresses import parse_target

    try:
        return parse_target(address.strip())
    except ValueError as exc:
        raise UsageError(f"--address: {exc}") from None


def _credentials(args: argparse.Namespace) -> Any:
    import grpc

    if not (args.ca or args.cert or args.key):
        return None
    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together (a client certificate needs its key)")
    files = {}
    for flag in ("ca", "cert", "key"):
        path = getattr(args, flag)
        try:
            files[flag] = path.read_bytes() if path else None
        except OSError as exc:
            raise UsageError(f"--{flag} {path}: cannot read it: {exc.strerror}") from None
    return grpc.ssl_channel_credentials(files["ca"], files["key"], files["cert"])


def _failure(call: Call, code: Any, details: str | None, address: str, timeout: float) -> Exception:
    """Turn a failed RPC into CallFailed (the function's failure) or UsageError (ours, or the transport's)."""
    import grpc

    try:
        data = orjson.loads(details or "")
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("errorType"), str):
        if data["errorType"] == faults.FUNCTION_NOT_FOUND:
            return UsageError(f"{address}: {data.get('errorMessage') or 'no function named ' + repr(call.function)}")
        if "functionMessage" not in data:  # a runtime called directly sends only the fault
            data["functionMessage"] = call.function_message()
        return CallFailed(orjson.dumps(data))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        fault = Fault(faults.TIMEOUT, f"{call.function} did not answer within --timeout ({timeout:g}s)")
        return CallFailed(failure_envelope(call, fault))
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "metadata" in (details or "").lower():
        # The function failed, but its envelope did not fit gRPC's metadata: not a size problem of the call.
        lost = Fault(faults.UNKNOWN_FAULT, f"{call.function} failed, and its error details were lost: {details}")
        return CallFailed(failure_envelope(call, lost))
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return CallFailed(failure_envelope(call, Fault(faults.MESSAGE_TOO_LARGE, details or "message too large")))
    if code == grpc.StatusCode.UNAVAILABLE:
        return UsageError(f"cannot reach {address}: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UsageError(f"{address} refused the call: {details} (edgefn call --token, or $EDGEFN_TOKEN)")
    return UsageError(f"{address} answered {code.name}: {details}")


# -- --config: a one-shot local pool -------------------------------------------------


def _call_local(args: argparse.Namespace, call: Call) -> bytes:
    if args.ca or args.cert or args.key:
        raise UsageError("--ca, --cert and --key are for --address; --config calls run locally")
    config = _load(args.config)
    try:
        function = config.function(call.function)
    except KeyError:
        known = ", ".join(f.name for f in config.functions) or "none"
        raise UsageError(f"{args.config} has no function named {call.function!r} (functions: {known})") from None
    with _relay_logs():
        return asyncio.run(_one_shot(function, call, args.timeout))


def _load(path: str) -> Config:
    from edgefn.manager.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        problems = "".join(f"\n  {problem}" for problem in exc.problems)
        raise UsageError(f"{path} has {len(exc.problems)} problem(s):{problems}") from None
    for warning in config.warnings:
        print(f"edgefn call: warning: {warning}", file=sys.stderr)
    return config


async def _one_shot(function: FunctionConfig, call: Call, timeout: float) -> bytes:
    """Start the function's runner, call it once, stop it; raise CallFailed with the envelope."""
    with tempfile.TemporaryDirectory(prefix="edgefn-call-") as folder:  # 0700: the instance's socket is private
        runner = _runner(function, Path(folder))
        try:
            async with asyncio.timeout(timeout):
                await runner.start()
                return await runner.call(call, lambda frame: print_output(frame.Payload))
        except Fault as fault:
            raise CallFailed(envelope(call, fault, runtime=function.runtime, attempts=1,
                                      payload_max=function.instance.message_max)) from None
        except TimeoutError:
            late = Fault(faults.TIMEOUT, f"{call.function} did not answer within --timeout ({timeout:g}s)")
            raise CallFailed(envelope(call, late, runtime=function.runtime, attempts=1)) from None
        finally:
            await runner.stop(STOP_GRACE)


def _runner(function: FunctionConfig, folder: Path) -> Runner:
    """The function's runner as the manager builds it, scaled down to the one call's needs."""
    from edgefn.manager.launch import LaunchError
    from edgefn.manager.metrics import Metrics
    from edgefn.manager.runners import KINDS, build_runner, launcher
    from edgefn.runtimes.sql import SqlError

    if not KINDS[function.runtime].in_process:
        try:
            launcher(function)()  # node missing: say so before starting anything
        except LaunchError as exc:
            raise UsageError(str(exc)) from None
    # One call needs one instance: don't warm ``min`` of them.
    one = replace(function, instance=replace(function.instance, min=0))
    try:
        return build_runner(one, socket_dir=folder, stats=Metrics().function(function.name))
    except SqlError as exc:
        raise UsageError(f"functions: {function.name}: {exc}") from None


@contextlib.contextmanager
def _relay_logs() -> Iterator[None]:
    """Show the handler's own output (relayed from the instance's stderr), nothing else.

    The pool's and the instance's warnings repeat what the envelope says, and the
    runtime's own lifecycle lines (``edgefn runtime: ...``) are not the handler's.
    """
    root, relay = logging.getLogger("edgefn"), logging.getLogger("edgefn.instance")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_handler_output)
    saved = root.level, relay.level, relay.propagate
    root.setLevel(logging.CRITICAL)
    relay.setLevel(logging.INFO)
    relay.propagate = False
    relay.addHandler(handler)
    try:
        yield
    finally:
        relay.removeHandler(handler)
        root.setLevel(saved[0])
        relay.setLevel(saved[1])
        relay.propagate = saved[2]


def _handler_output(record: logging.LogRecord) -> bool:
    # The instance relays each stderr line as ("[%s] %s", name, line).
    args = record.args if isinstance(record.args, tuple) else ()
    return record.levelno == logging.INFO and len(args) == 2 and not str(args[1]).startswith("edgefn runtime:")
