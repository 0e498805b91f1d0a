"""The gRPC server stays bounded: waiting direct calls per function, and error details that fit metadata."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import orjson
import pytest

from edgefn.manager import admission
from edgefn.manager.config import FunctionConfig, InstanceConfig, ServerConfig
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.manager.router import Runner
from edgefn.manager.server import FunctionServer
from edgefn.wire import function_pb2, function_pb2_grpc

CODEDIR = Path(__file__).resolve().parent.parent / "functions" / "grpc_calls"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def address(socket_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setattr(admission, "WAITING_MAX", 2)
    metrics = Metrics()
    functions = [FunctionConfig(name, "python", f"index.{name}", CODEDIR, instance=InstanceConfig(min=1))
                 for name in ("fails", "sleeps")]
    runners: dict[str, Runner] = {f.name: Pool(f, socket_dir=socket_dir, stats=metrics.function(f.name))
                                  for f in functions}
    await asyncio.gather(*(r.start() for r in runners.values()))  # type: ignore[attr-defined]
    server = FunctionServer(ServerConfig("127.0.0.1:0"), runners)
    await server.start()
    yield server.address
    await server.stop(1)
    await asyncio.gather(*(r.stop(1) for r in runners.values()))  # type: ignore[attr-defined]


def request(name: str, payload: bytes) -> function_pb2.FunctionMessage:
    return function_pb2.FunctionMessage(FunctionName=name, Payload=payload)


async def test_a_full_queue_of_direct_calls_is_refused_at_once(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = function_pb2_grpc.FunctionStub(channel)
        calls = [asyncio.ensure_future(stub.Call(request("sleeps", b"0.5"), timeout=30)) for _ in range(6)]
        started = time.monotonic()
        refused = []
        for call in asyncio.as_completed(calls):
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                refused.append((exc, time.monotonic() - started))
    # max 1 × concurrency 1 running, 2 waiting: 3 admitted, 3 refused
    assert len(refused) == 3
    for exc, after in refused:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and after < 0.45
        details = orjson.loads(exc.details())
        assert "sleeps has 3 direct calls in progress" in details["errorMessage"] and "try again" in details["errorMessage"]


@pytest.mark.parametrize("size", [6 * 1024, 64 * 1024, 3 * 1024 * 1024])
async def test_a_failed_call_with_a_large_payload_keeps_its_envelope(address: str, size: int) -> None:
    payload = orjson.dumps("é" * (size // 2))
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await function_pb2_grpc.FunctionStub(channel).Call(request("fails", payload), timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    details = orjson.loads(caught.value.details())
    assert details["errorType"] == "ValueError" and details["detailsTruncated"] is True
    assert details["functionMessage"]["FunctionName"] == "fails"


async def test_edgefn_call_shows_the_functions_own_error_type_for_a_large_payload(address: str,
                                                                                  tmp_path: Path) -> None:
    data = tmp_path / "big.json"
    data.write_bytes(orjson.dumps({"blob": "x" * 100_000}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgefn", "call", "fails", "--address", address, "--data", f"@{data}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    assert process.returncode == 1
    envelope = orjson.loads(stderr.decode().strip().splitlines()[-1])
    assert envelope["errorType"] == "ValueError" and envelope["detailsTruncated"] is True
