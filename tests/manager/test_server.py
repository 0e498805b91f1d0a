"""The manager's gRPC server for direct calls (issue #6 point 2): real pools, real gRPC."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from edgefn.manager.config import FunctionConfig, InstanceConfig, ServerConfig
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.manager.runners import Runner
from edgefn.manager.server import FunctionServer, ServerError
from edgefn.wire import function_pb2, function_pb2_grpc

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"

pytestmark = pytest.mark.timeout(60)


def python_function(name: str, handler: str, case: str = "grpc_calls", **instance: object) -> FunctionConfig:
    return FunctionConfig(name, "python", handler, FUNCTIONS / case, instance=InstanceConfig(**instance))  # type: ignore[arg-type]


@pytest.fixture
async def runners(socket_dir: Path) -> AsyncIterator[dict[str, Runner]]:
    """Real pools of the fixture functions, stopped after the test."""
    metrics = Metrics()
    functions = [
        python_function("echo", "index.echo"),
        python_function("context", "index.context_of"),
        python_function("nothing", "index.nothing"),
        python_function("fails", "index.fails"),
        python_function("crashes", "index.crashes"),
        python_function("small", "index.echo", message_max=1024),
    ]
    pools: dict[str, Runner] = {f.name: Pool(f, socket_dir=socket_dir, stats=metrics.function(f.name)) for f in functions}
    await asyncio.gather(*(pool.start() for pool in pools.values()))  # type: ignore[attr-defined]
    yield pools
    await asyncio.gather(*(pool.stop(5) for pool in pools.values()))  # type: ignore[attr-defined]


@pytest.fixture
async def server(runners: dict[str, Runner]) -> AsyncIterator[FunctionServer]:
    server = FunctionServer(ServerConfig("127.0.0.1:0"), runners)
    await server.start()
    yield server
    await server.stop(1)


@pytest.fixture
async def stub(server: FunctionServer) -> AsyncIterator[function_pb2_grpc.FunctionStub]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield function_pb2_grpc.FunctionStub(channel)


def message(name: str, payload: bytes = b"", **fields: object) -> function_pb2.FunctionMessage:
    return function_pb2.FunctionMessage(FunctionName=name, Payload=payload, **fields)  # type: ignore[arg-type]


async def failure(stub: function_pb2_grpc.FunctionStub, request: function_pb2.FunctionMessage) -> tuple[grpc.StatusCode, dict]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(request, timeout=30)
    return caught.value.code(), orjson.loads(caught.value.details())


# -- calls ---------------------------------------------------------------------------------


async def test_a_call_returns_the_result_and_echoes_the_request_fields(stub: function_pb2_grpc.FunctionStub) -> None:
    request = message("echo", b'{"n": 1}', ID=7, QOS=1, Topic="t/in", Timestamp=1795285009, FunctionInvokeID="abc")
    reply = await stub.Call(request, timeout=30)
    assert orjson.loads(reply.Payload) == {"n": 1}
    assert (reply.ID, reply.QOS, reply.Topic, reply.Timestamp, reply.FunctionName, reply.FunctionInvokeID) == (
        7, 1, "t/in", 1795285009, "echo", "abc")


async def test_the_function_sees_the_clients_invoke_id_or_a_fresh_uuid_and_now(stub: function_pb2_grpc.FunctionStub) -> None:
    kept = orjson.loads((await stub.Call(message("context", FunctionInvokeID="mine", QOS=1, Topic="a/b"))).Payload)
    assert (kept["functionInvokeID"], kept["messageQOS"], kept["messageTopic"]) == ("mine", 1, "a/b")
    reply = await stub.Call(message("context"), timeout=30)
    fresh = orjson.loads(reply.Payload)
    assert len(fresh["functionInvokeID"]) == 36 and fresh["functionInvokeID"] == reply.FunctionInvokeID
    assert abs(fresh["messageTimestamp"] - reply.Timestamp) <= 1 and reply.Timestamp > 1_700_000_000


async def test_an_empty_result_is_an_empty_payload(stub: function_pb2_grpc.FunctionStub) -> None:
    reply = await stub.Call(message("nothing", b"{}"), timeout=30)
    assert reply.Payload == b"" and reply.FunctionName == "nothing"


async def test_a_user_error_is_unknown_with_the_envelope_as_details(stub: function_pb2_grpc.FunctionStub) -> None:
    code, body = await failure(stub, message("fails", b"42", Topic="t", FunctionInvokeID="id-1"))
    assert code == grpc.StatusCode.UNKNOWN
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "bad input 42"
    assert body["errorStack"] == ['File "index.py", line 25, in fails', 'File "index.py", line 29, in check']
    assert body["functionMessage"] == {"ID": 0, "QOS": 0, "Topic": "t", "Payload": base64.b64encode(b"42").decode(),
                                       "Timestamp": body["functionMessage"]["Timestamp"], "FunctionName": "fails",
                                       "FunctionInvokeID": "id-1"}
    assert (body["runtime"], body["attempts"]) == ("python", 1)


async def test_a_crash_is_internal_and_never_retried(stub: function_pb2_grpc.FunctionStub, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    code, body = await failure(stub, message("crashes", orjson.dumps({"log": str(attempts)})))
    # Crashed or unavailable, depending on whether the exit or the broken stream is seen first:
    # both are the faults the router would retry.
    assert (code, body["errorType"]) in {(grpc.StatusCode.INTERNAL, "Runtime.InstanceCrashed"),
                                         (grpc.StatusCode.UNAVAILABLE, "Runtime.Unavailable")}
    assert body["attempts"] == 1
    assert attempts.read_text() == "attempt\n"


async def test_an_oversize_input_is_resource_exhausted_with_a_truncated_echo(stub: function_pb2_grpc.FunctionStub) -> None:
    code, body = await failure(stub, message("small", b"x" * 4096))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert body["errorType"] == "Runtime.MessageTooLarge"
    assert body["functionMessage"]["PayloadTruncated"] is True
    assert len(base64.b64decode(body["functionMessage"]["Payload"])) == 1024


async def test_an_unknown_function_is_not_found_naming_it(stub: function_pb2_grpc.FunctionStub) -> None:
    code, body = await failure(stub, message("nope", b"{}"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert body["errorType"] == "Runtime.FunctionNotFound"
    assert "'nope'" in body["errorMessage"] and "echo" in body["errorMessage"]
    code, body = await failure(stub, message(""))
    assert code == grpc.StatusCode.NOT_FOUND and "no FunctionName" in body["errorMessage"]


async def test_calls_look_the_function_up_in_the_live_runners(
    server: FunctionServer, runners: dict[str, Runner], stub: function_pb2_grpc.FunctionStub, socket_dir: Path
) -> None:
    again = python_function("echo-again", "index.echo")
    runners["echo-again"] = Pool(again, socket_dir=socket_dir, stats=Metrics().function(again.name))  # a hot reload
    try:
        reply = await stub.Call(message("echo-again", b"[1]"), timeout=30)
        assert reply.Payload == b"[1]"
    finally:
        await runners.pop("echo-again").stop(5)
    code, _ = await failure(stub, message("echo-again"))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_sql_functions_are_called_in_process(socket_dir: Path) -> None:
    from edgefn.manager.sql import SqlRunner

    function = FunctionConfig("big", "sql", "select n, topic() as t where n > 1", None)
    runners: dict[str, Runner] = {"big": SqlRunner(function, Metrics().function("big"))}
    server = FunctionServer(ServerConfig("127.0.0.1:0"), runners)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = function_pb2_grpc.FunctionStub(channel)
            reply = await stub.Call(message("big", b'{"n": 2}', Topic="s/1"), timeout=30)
            assert orjson.loads(reply.Payload) == {"n": 2, "t": "s/1"}
            filtered = await stub.Call(message("big", b'{"n": 0}'), timeout=30)
            assert filtered.Payload == b""
    finally:
        await server.stop(1)


# -- health and reflection -------------------------------------------------------------------


async def test_health_reports_the_server_and_each_function(server: FunctionServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "baetyl.Function", "echo", "fails"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_turns_not_serving_when_the_server_stops(runners: dict[str, Runner]) -> None:
    server = FunctionServer(ServerConfig("127.0.0.1:0"), runners)
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="echo"), timeout=20)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(server.stop(5), name="test:stop")
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        await stopping


async def test_reflection_lists_the_function_service_and_health(server: FunctionServer) -> None:
    def reflect() -> tuple[list[str], list[str]]:
        with grpc.insecure_channel(server.address) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            services = list(database.get_services())
            from google.protobuf.descriptor_pool import DescriptorPool

            methods = [m.name for m in DescriptorPool(database).FindServiceByName("baetyl.Function").methods]
            return services, methods

    services, methods = await asyncio.to_thread(reflect)
    assert {"baetyl.Function", "grpc.health.v1.Health"} <= set(services)
    assert "Call" in methods


# -- addresses ------------------------------------------------------------------------------


async def test_a_unix_socket_address_serves_and_replaces_a_stale_socket(
    runners: dict[str, Runner], socket_dir: Path
) -> None:
    path = socket_dir / "fn.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays; nobody listens: what a killed manager leaves
    server = FunctionServer(ServerConfig(f"unix://{path}"), runners)
    await server.start()
    try:
        assert server.address == f"unix://{path}"
        async with grpc.aio.insecure_channel(server.address) as channel:
            reply = await function_pb2_grpc.FunctionStub(channel).Call(message("echo", b"1"), timeout=30)
            assert reply.Payload == b"1"
    finally:
        await server.stop(1)
    assert not path.exists()


async def test_a_live_unix_socket_or_a_file_is_never_taken_over(runners: dict[str, Runner], socket_dir: Path) -> None:
    path = socket_dir / "live.sock"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        with pytest.raises(ServerError, match="another process is listening"):
            await FunctionServer(ServerConfig(f"unix://{path}"), runners).start()
    finally:
        live.close()
    plain = socket_dir / "plain"
    plain.write_text("mine")
    with pytest.raises(ServerError, match="is not a socket"):
        await FunctionServer(ServerConfig(f"unix://{plain}"), runners).start()
    assert plain.read_text() == "mine"


async def test_a_taken_port_fails_naming_server_address(runners: dict[str, Runner]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ServerError, match=rf"server.address {address}: cannot listen there: Address already in use"):
            await FunctionServer(ServerConfig(address), runners).start()


# -- TLS --------------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    folder = tmp_path_factory.mktemp("certs")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=edgefn test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=folder)
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}", cwd=folder)
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{who}.pem", "-days", "1", "-extfile", f"{who}.ext", cwd=folder)
    return folder


async def test_tls_serves_clients_that_trust_the_ca(runners: dict[str, Runner], certs: Path) -> None:
    server = FunctionServer(ServerConfig("127.0.0.1:0", cert=certs / "server.pem", key=certs / "server.key"), runners)
    await server.start()
    try:
        trust = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes())
        async with grpc.aio.secure_channel(server.address, trust) as channel:
            reply = await function_pb2_grpc.FunctionStub(channel).Call(message("echo", b"2"), timeout=30)
            assert reply.Payload == b"2"
        async with grpc.aio.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await function_pb2_grpc.FunctionStub(channel).Call(message("echo"), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(1)


async def test_mutual_tls_requires_a_client_certificate(runners: dict[str, Runner], certs: Path) -> None:
    config = ServerConfig("127.0.0.1:0", ca=certs / "ca.pem", cert=certs / "server.pem", key=certs / "server.key")
    server = FunctionServer(config, runners)
    await server.start()
    ca = (certs / "ca.pem").read_bytes()
    try:
        with_cert = grpc.ssl_channel_credentials(ca, (certs / "client.key").read_bytes(), (certs / "client.pem").read_bytes())
        async with grpc.aio.secure_channel(server.address, with_cert) as channel:
            reply = await function_pb2_grpc.FunctionStub(channel).Call(message("echo", b"3"), timeout=30)
            assert reply.Payload == b"3"
        async with grpc.aio.secure_channel(server.address, grpc.ssl_channel_credentials(ca)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await function_pb2_grpc.FunctionStub(channel).Call(message("echo"), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(1)


async def test_an_unreadable_tls_file_fails_naming_it(runners: dict[str, Runner], certs: Path) -> None:
    config = ServerConfig("127.0.0.1:0", cert=certs / "missing.pem", key=certs / "server.key")
    with pytest.raises(ServerError, match="server.cert .*missing.pem: cannot read it"):
        await FunctionServer(config, runners).start()
    assert os.path.exists(certs / "server.key")
