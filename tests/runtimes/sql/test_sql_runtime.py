"""``edgefn runtime sql``: the same engine served over real gRPC (Call and Talk), the
runtime instance protocol's handshake, check mode and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence

import grpc
import grpc.aio
import orjson
import pytest

from edgefn.wire import function_pb2, function_pb2_grpc

FunctionMessage = function_pb2.FunctionMessage
DOCS = "select qos() as qos, topic() as topic, * where id < 10"


class SqlRuntime:
    """One `python -I -m edgefn.runtimes.sql` process and a channel to it."""

    def __init__(self, process: asyncio.subprocess.Process, handshake: dict[str, object]) -> None:
        self.process = process
        self.handshake = handshake
        self.channel = grpc.aio.insecure_channel(str(handshake["address"])) if handshake.get("address") else None

    @property
    def stub(self) -> function_pb2_grpc.FunctionStub:
        assert self.channel is not None
        return function_pb2_grpc.FunctionStub(self.channel)

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.process.wait(), 15)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self.process.returncode is None:
            self.process.kill()
        await self.process.communicate()


@pytest.fixture
async def start(sockdir: str) -> AsyncIterator[object]:
    started: list[SqlRuntime] = []

    async def spawn(args: Sequence[str], env: dict[str, str] | None = None) -> SqlRuntime:
        environment = {"PATH": os.environ.get("PATH", ""), **(env or {})}
        if "--check" not in args:
            args = [*args, "--address", f"unix://{sockdir}/{len(started)}.sock"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-m", "edgefn.runtimes.sql", *args,
            env=environment, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        runtime = SqlRuntime(process, orjson.loads(line))
        started.append(runtime)
        return runtime

    try:
        yield spawn
    finally:
        for runtime in started:
            await runtime.close()


async def test_serves_the_docs_example_over_call(start) -> None:
    runtime = await start(["--name", "sql-filter", "--handler", DOCS])
    assert runtime.handshake["ready"] is True
    assert runtime.handshake["methods"] == ["Call", "Talk"]
    request = FunctionMessage(ID=7, QOS=1, Topic="t", Payload=b'{"id": 1}', Timestamp=1700000000,
                              FunctionName="sql-filter", FunctionInvokeID="inv-1")
    reply = await asyncio.wait_for(runtime.stub.Call(request), 15)
    assert orjson.loads(reply.Payload) == {"qos": 1, "topic": "t", "id": 1}
    assert (reply.ID, reply.QOS, reply.Topic, reply.Timestamp, reply.FunctionName, reply.FunctionInvokeID) == (
        7, 1, "t", 1700000000, "sql-filter", "inv-1")
    filtered = await asyncio.wait_for(runtime.stub.Call(FunctionMessage(Topic="t", Payload=b'{"id": 11}')), 15)
    assert filtered.Payload == b""


async def test_serves_talk_streams_matched_by_sequence(start) -> None:
    runtime = await start(["--handler", "select a * 2 as b"])
    requests = [FunctionMessage(Sequence=n, Topic="t", Payload=orjson.dumps({"a": n})) for n in range(1, 6)]
    answers = runtime.stub.Talk(iter(requests))
    got = {}
    async for answer in answers:
        assert answer.Code == 0
        got[answer.Sequence] = orjson.loads(answer.Payload)["b"]
    assert got == {n: 2 * n for n in range(1, 6)}


async def test_statement_from_the_environment(start) -> None:
    runtime = await start([], env={"EDGEFN_FUNCTION_HANDLER": "select topic(2) as level"})
    reply = await asyncio.wait_for(runtime.stub.Call(FunctionMessage(Topic="a/b")), 15)
    assert orjson.loads(reply.Payload) == {"level": "b"}


async def test_a_statement_that_does_not_compile_fails_the_handshake(start) -> None:
    runtime = await start(["--name", "broken", "--handler", "select a from t"])
    assert runtime.handshake["ready"] is False
    assert runtime.handshake["errorType"] == "Runtime.UserCodeSyntaxError"
    assert 'SQL function "broken" at column 10' in str(runtime.handshake["errorMessage"])
    assert runtime.handshake["errorStack"] == ["select a from t", "         ^"]
    assert await runtime.exit_code() == 3


async def test_check_mode_loads_and_exits(start) -> None:
    ok = await start(["--check", "--handler", DOCS])
    assert ok.handshake["ready"] is True
    assert await ok.exit_code() == 0
    bad = await start(["--check", "--handler", "select nosuch(a)"])
    assert bad.handshake["ready"] is False
    assert "unknown SQL function nosuch()" in str(bad.handshake["errorMessage"])
    assert await bad.exit_code() == 3


async def test_output_above_message_max_is_a_fault(start) -> None:
    runtime = await start(["--handler", "select s, s as t", "--message-max", "1k"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(runtime.stub.Call(FunctionMessage(Payload=orjson.dumps({"s": "x" * 600}))), 15)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert orjson.loads(caught.value.details() or "")["errorType"] == "Runtime.MessageTooLarge"


async def test_sigterm_exits_zero(start) -> None:
    runtime = await start(["--handler", DOCS])
    await asyncio.wait_for(runtime.stub.Call(FunctionMessage(Payload=b'{"id": 1}')), 15)
    runtime.process.send_signal(signal.SIGTERM)
    assert await runtime.exit_code() == 0


def test_the_main_module_is_importable_without_serving() -> None:
    # `edgefn runtime sql` imports main from here; importing must not start a server.
    import importlib

    module = importlib.import_module("edgefn.runtimes.sql.__main__")
    assert callable(module.main)
