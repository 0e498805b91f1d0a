"""The gRPC server's guards: no plaintext off this machine unless said so, and an optional bearer token."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from edgefn.manager.config import ConfigError, FunctionConfig, ServerConfig, load_config
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.manager.router import Runner
from edgefn.manager.server import FunctionServer
from edgefn.wire import function_pb2, function_pb2_grpc
from support.manager import python_function, write_config

CODEDIR = Path(__file__).resolve().parent.parent / "functions" / "grpc_calls"
TOKEN = "s3cret-token"

pytestmark = pytest.mark.timeout(60)


# -- server.address without TLS --------------------------------------------------------------


def load_server(tmp_path: Path, server: dict) -> ServerConfig | None:
    path = write_config(tmp_path, {"server": server, "functions": [python_function("hi", "e2e", "index.echo")]})
    return load_config(path, environ={"EDGEFN_TEST_TOKEN": TOKEN}).server


@pytest.mark.parametrize("address", ["0.0.0.0:50051", "[::]:50051", "192.168.1.10:50051", "edge.example:50051"])
def test_a_non_loopback_address_without_tls_is_refused(tmp_path: Path, address: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_server(tmp_path, {"address": address})
    assert "server.address" in str(caught.value) and "server.insecure: true" in str(caught.value)


@pytest.mark.parametrize("address", ["127.0.0.1:0", "127.0.0.2:50051", "localhost:50051", "[::1]:50051",
                                     "unix:edgefn.sock"])
def test_a_loopback_address_needs_no_tls(tmp_path: Path, address: str) -> None:
    assert load_server(tmp_path, {"address": address}) is not None


def test_server_insecure_accepts_plaintext_on_the_network(tmp_path: Path) -> None:
    server = load_server(tmp_path, {"address": "0.0.0.0:50051", "insecure": True})
    assert server is not None and server.insecure


def test_server_token_expands_from_the_environment_and_never_prints(tmp_path: Path) -> None:
    server = load_server(tmp_path, {"address": "127.0.0.1:0", "token": "${EDGEFN_TEST_TOKEN}"})
    assert server is not None and server.token == TOKEN and TOKEN not in repr(server)


# -- server.token ------------------------------------------------------------------------------


@pytest.fixture
async def address(socket_dir: Path) -> AsyncIterator[str]:
    function = FunctionConfig("echo", "python", "index.echo", CODEDIR)
    runners: dict[str, Runner] = {"echo": Pool(function, socket_dir=socket_dir, stats=Metrics().function("echo"))}
    server = FunctionServer(ServerConfig("127.0.0.1:0", token=TOKEN), runners)
    await server.start()
    yield server.address
    await server.stop(1)
    await runners["echo"].stop(1)


async def call(address: str, token: str | None) -> bytes:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await function_pb2_grpc.FunctionStub(channel).Call(
            function_pb2.FunctionMessage(FunctionName="echo", Payload=b"1"), timeout=30, metadata=metadata)
    return bytes(reply.Payload)


async def test_a_call_with_the_token_is_served(address: str) -> None:
    assert await call(address, TOKEN) == b"1"


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x", TOKEN[:-1]])
async def test_a_call_without_the_right_token_is_unauthenticated(address: str, token: str | None) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(address, token)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "server.token" in (caught.value.details() or "")


async def test_health_needs_no_token_but_reflection_does(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="echo"),
                                                                 timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stream:
                pass
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def edgefn_call(address: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgefn", "call", "echo", "--address", address, "--data", "5", *args,
        env={**{k: v for k, v in os.environ.items() if k != "EDGEFN_TOKEN"}, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout, stderr.decode()


async def test_edgefn_call_sends_the_token_from_the_flag_or_the_environment(address: str) -> None:
    assert (await edgefn_call(address, "--token", TOKEN))[:2] == (0, b"5\n")  # a result ends its line
    assert (await edgefn_call(address, env={"EDGEFN_TOKEN": TOKEN}))[:2] == (0, b"5\n")
    code, _, stderr = await edgefn_call(address)
    assert code == 2 and "--token" in stderr and "server.token" in stderr
