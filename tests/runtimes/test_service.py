"""The Function service's Talk stream ends when the runtime drains, however early the drain comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from edgefn.runtimes.service import FunctionService
from edgefn.wire import function_pb2_grpc
from edgefn.wire.function_pb2 import FunctionMessage

pytestmark = pytest.mark.timeout(30)


async def echo(request: FunctionMessage, outputs: object = None) -> bytes:
    return request.Payload


@pytest.fixture
async def served() -> AsyncIterator[tuple[FunctionService, str]]:
    service = FunctionService(echo, 1024 * 1024)  # type: ignore[arg-type]
    server = grpc.aio.server()
    service.register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield service, f"127.0.0.1:{port}"
    await server.stop(None)


async def test_a_stream_opened_after_the_drain_began_ends_at_once(served: tuple[FunctionService, str]) -> None:
    service, address = served
    service.stop_reading()  # SIGTERM arrived just before the manager's stream opened
    async with grpc.aio.insecure_channel(address) as channel:
        call = function_pb2_grpc.FunctionStub(channel).Talk()
        assert await asyncio.wait_for(call.read(), 5) is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


async def test_a_drain_ends_an_open_stream_after_its_answers(served: tuple[FunctionService, str]) -> None:
    service, address = served
    async with grpc.aio.insecure_channel(address) as channel:
        call = function_pb2_grpc.FunctionStub(channel).Talk()
        await call.write(FunctionMessage(Sequence=1, Payload=b"1"))
        assert (await asyncio.wait_for(call.read(), 5)).Payload == b"1"
        service.stop_reading()
        assert await asyncio.wait_for(call.read(), 5) is grpc.aio.EOF
