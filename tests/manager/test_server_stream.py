"""CallStream on the manager's gRPC server: every output as it is produced, then the result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import orjson
import pytest

from edgefn.manager.config import FunctionConfig, InstanceConfig, ServerConfig
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.manager.runners import Runner
from edgefn.manager.server import FunctionServer
from edgefn.wire import function_pb2, function_pb2_grpc

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"

pytestmark = pytest.mark.timeout(60)


def outputs_function(name: str, handler: str, **instance: object) -> FunctionConfig:
    return FunctionConfig(name, "python", handler, FUNCTIONS / "outputs",  # type: ignore[arg-type]
                          instance=InstanceConfig(min=1, **instance))  # type: ignore[arg-type]


@pytest.fixture
async def stub(socket_dir: Path) -> AsyncIterator[function_pb2_grpc.FunctionStub]:
    metrics = Metrics()
    functions = [
        outputs_function("publishes", "index.publishes"),
        outputs_function("fails", "index.then_fails"),
        outputs_function("slow", "index.slow", timeout=1.5),
    ]
    runners: dict[str, Runner] = {
        f.name: Pool(f, socket_dir=socket_dir, stats=metrics.function(f.name)) for f in functions}
    await asyncio.gather(*(pool.start() for pool in runners.values()))  # type: ignore[attr-defined]
    server = FunctionServer(ServerConfig("127.0.0.1:0"), runners)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield function_pb2_grpc.FunctionStub(channel)
    finally:
        await server.stop(1)
        await asyncio.gather(*(pool.stop(5) for pool in runners.values()))  # type: ignore[attr-defined]


def request(name: str, payload: bytes) -> function_pb2.FunctionMessage:
    return function_pb2.FunctionMessage(FunctionName=name, Payload=payload, Topic="in/t", QOS=1)


async def test_callstream_returns_each_output_then_the_result(stub) -> None:
    frames = [frame async for frame in stub.CallStream(request("publishes", b'{"n": 2}'), timeout=30)]
    assert [(f.Output, f.Payload, f.Topic, f.OutputQOS, f.OutputRetain) for f in frames] == [
        (True, b'{"i":0}', "", 0, False),
        (True, b'{"i":1}', "", 0, False),
        (True, b"raw", "elsewhere/raw", 1, True),
        (False, b'{"done":"in/t","dict":true}', "in/t", 0, False),
    ]
    assert all(frame.FunctionName == "publishes" for frame in frames)


async def test_callstream_outputs_arrive_as_they_are_produced(stub) -> None:
    started = time.monotonic()
    arrivals = []
    async for frame in stub.CallStream(request("slow", b'{"n": 3, "every": 0.4}'), timeout=30):
        arrivals.append((frame.Output, time.monotonic() - started))
    assert [output for output, _ in arrivals] == [True, True, True, False]
    assert arrivals[0][1] < arrivals[-1][1] - 0.6  # not held until the end


async def test_callstream_failure_after_outputs_ends_with_calls_status_and_envelope(stub) -> None:
    call = stub.CallStream(request("fails", b"{}"), timeout=30)
    first = await call.read()
    assert first.Output and orjson.loads(first.Payload) == {"before": 1}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    body = orjson.loads(caught.value.details())
    assert body["errorType"] == "RuntimeError" and body["functionMessage"]["FunctionName"] == "fails"


async def test_callstream_timeout_keeps_the_outputs_before_it_and_nothing_after(stub) -> None:
    call = stub.CallStream(request("slow", b'{"n": 20, "every": 0.5}'), timeout=30)
    outputs = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while True:
            frame = await call.read()
            assert frame is not grpc.aio.EOF and frame.Output
            outputs.append(orjson.loads(frame.Payload)["i"])
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert orjson.loads(caught.value.details())["errorType"] == "Runtime.Timeout"
    assert outputs == list(range(len(outputs))) and 1 <= len(outputs) <= 4


async def test_unary_call_returns_the_result_only(stub) -> None:
    reply = await stub.Call(request("publishes", b'{"n": 2}'), timeout=30)
    assert orjson.loads(reply.Payload) == {"done": "in/t", "dict": True}


async def test_callstream_of_an_unknown_function_is_not_found(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.CallStream(request("nope", b"{}"), timeout=30):
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
