"""The runtime instance protocol around the calls: addresses, SIGTERM drain, parent pipe, usage."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import grpc
import grpc.aio
import orjson

from edgefn.wire.function_pb2 import FunctionMessage

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


async def test_sigterm_during_a_slow_call_finishes_it_and_exits_0(spawn, sockdir: str) -> None:
    runtime = await spawn("echo", "index.wait_for_file")
    release = os.path.join(sockdir, "release")
    slow = asyncio.create_task(runtime.call(orjson.dumps(release)), name="test-slow-call")
    await runtime.stderr_line("wait_for_file started")
    runtime.process.send_signal(signal.SIGTERM)
    await runtime.stderr_line("stopping")
    assert not slow.done()
    Path(release).touch()
    assert (await slow).Payload == b'"released"'
    assert await runtime.exit_code() == 0


async def test_sigterm_drains_an_open_talk_stream_and_ends_it(spawn, sockdir: str) -> None:
    runtime = await spawn("echo", "index.wait_for_file")
    release = os.path.join(sockdir, "release")
    call, idle = runtime.stub.Talk(), runtime.stub.Talk()
    await idle.write(FunctionMessage(Sequence=7, Payload=orjson.dumps(sockdir)))  # exists: answered at once
    assert (await asyncio.wait_for(idle.read(), 15)).Sequence == 7  # so this stream is surely open
    await call.write(FunctionMessage(Sequence=1, Payload=orjson.dumps(release)))
    await runtime.stderr_line("wait_for_file started", nth=2)  # the idle stream's call was the first
    runtime.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(idle.read(), 15) is grpc.aio.EOF  # nothing in flight: ends at once
    await runtime.stderr_line("stopping")
    await call.write(FunctionMessage(Sequence=2, Payload=orjson.dumps(sockdir)))  # too late: never run
    Path(release).touch()
    reply = await asyncio.wait_for(call.read(), 15)
    assert (reply.Sequence, reply.Payload) == (1, b'"released"')
    assert await asyncio.wait_for(call.read(), 15) is grpc.aio.EOF  # ended by the runtime, not the client
    assert await runtime.exit_code() == 0
    assert sum("wait_for_file started" in line for line in runtime.stderr) == 2  # idle's and Sequence 1


async def test_idle_runtime_exits_0_on_sigterm(spawn) -> None:
    runtime = await spawn("echo")
    runtime.process.send_signal(signal.SIGTERM)
    assert await runtime.exit_code() == 0
    assert not os.path.exists(runtime.address.removeprefix("unix://"))


async def test_eof_on_the_parent_pipe_exits_at_once_even_mid_call(spawn) -> None:
    runtime = await spawn(
        "echo", "index.wait_for_file", env={"EDGEFN_PARENT_PIPE": "1"}, stdin=asyncio.subprocess.PIPE
    )
    stuck = asyncio.create_task(runtime.call(b'"/nonexistent/never"'), name="test-stuck-call")
    await runtime.stderr_line("wait_for_file started")
    assert runtime.process.stdin is not None
    runtime.process.stdin.close()
    assert await runtime.exit_code() == 0
    stuck.cancel()


async def test_baetyl_service_instance_address_is_honoured(spawn, sockdir: str) -> None:
    address = f"unix://{sockdir}/baetyl.sock"
    runtime = await spawn("echo", env={"BAETYL_SERVICE_INSTANCE_ADDRESS": address})
    assert runtime.address == address
    assert (await runtime.call(b"{}")).Payload


async def test_edgefn_address_wins_over_baetyls_and_the_flag_over_both(spawn, sockdir: str) -> None:
    env = {"EDGEFN_INSTANCE_ADDRESS": f"unix://{sockdir}/edgefn.sock",
           "BAETYL_SERVICE_INSTANCE_ADDRESS": f"unix://{sockdir}/baetyl.sock"}
    assert (await spawn("echo", env=env)).address.endswith("/edgefn.sock")
    flagged = await spawn("echo", env=env, address=f"unix://{sockdir}/flag.sock")
    assert flagged.address.endswith("/flag.sock")


async def test_host_port_and_tcp_addresses_work(spawn) -> None:
    for address in ("127.0.0.1:0", "tcp://127.0.0.1:0"):
        runtime = await spawn("echo", address=address)
        host, _, port = runtime.address.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        assert (await runtime.call(b"{}")).Payload


async def test_relative_unix_address_is_relative_to_the_working_directory(spawn, sockdir: str) -> None:
    relative = os.path.relpath(os.path.join(sockdir, "rel.sock"), FUNCTIONS / "echo")
    runtime = await spawn("echo", address=f"unix:{relative}")
    assert (await runtime.call(b"{}")).Payload
    assert os.path.exists(os.path.join(sockdir, "rel.sock"))


async def test_a_port_in_use_fails_the_handshake_and_exits_1(spawn) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = await spawn("echo", address=f"127.0.0.1:{port}", expect_ready=False)
        assert runtime.handshake["ready"] is False
        assert runtime.handshake["errorType"] == "Runtime.Unavailable"
        assert await runtime.exit_code() == 1


async def usage_error(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-m", "edgefn.runtimes.python", *argv,
        env={"PATH": os.environ["PATH"], **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 15)
    return await process.wait(), stderr.decode()


async def test_usage_errors_exit_2_with_a_message() -> None:
    code, message = await usage_error("--address", "unix:///tmp/x.sock")
    assert (code, "no handler" in message) == (2, True)
    code, message = await usage_error("--handler", "index.handler", "--address", "/tmp/bare/path.sock")
    assert (code, "bad address" in message) == (2, True)
    code, message = await usage_error("--handler", "index.handler", env={"EDGEFN_INSTANCE_ADDRESS": "x:1",
                                                                          "EDGEFN_MESSAGE_MAX": "lots"})
    assert (code, "bad --message-max" in message) == (2, True)
    code, message = await usage_error("--handler", "index.handler")
    assert (code, "address" in message) == (2, True)


async def test_a_second_signal_forces_the_exit_of_a_hung_drain(spawn) -> None:
    runtime = await spawn("echo", "index.wait_for_file")
    stuck = asyncio.create_task(runtime.call(b'"/nonexistent/never"'), name="test-stuck-call")
    await runtime.stderr_line("wait_for_file started")
    runtime.process.send_signal(signal.SIGTERM)
    await runtime.stderr_line("stopping")
    runtime.process.send_signal(signal.SIGTERM)
    assert await runtime.exit_code() == 1
    stuck.cancel()


async def test_handshake_names_the_pid_and_methods(spawn) -> None:
    runtime = await spawn("echo")
    assert runtime.handshake["pid"] == runtime.process.pid
    assert runtime.handshake["methods"] == ["Call", "Talk"]
