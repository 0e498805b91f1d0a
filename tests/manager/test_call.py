"""``edgefn call`` (issue #6 point 3): a real CLI process against real gRPC servers and pools."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import yaml
from edgefn.manager.config import FunctionConfig, ServerConfig
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.manager.runners import Runner
from edgefn.manager.server import FunctionServer
from support.processes import python_runtime

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"
CODEDIR = FUNCTIONS / "grpc_calls"

# `edgefn call ARGS`, through the module's own entry points.
pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Done:
    code: int
    stdout: bytes
    stderr: str

    @property
    def envelope(self) -> dict:
        """The error envelope: the last line of stderr."""
        return orjson.loads(self.stderr.strip().splitlines()[-1])


async def edgefn_call(*args: str, stdin: bytes | None = None, timeout: float = 30) -> Done:
    """Run ``edgefn call ARGS`` in a child process (never blocking the loop the server runs on)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgefn", "call", *args,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate(stdin)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Done(process.returncode, stdout, stderr.decode())


@pytest.fixture
async def address(socket_dir: Path) -> AsyncIterator[str]:
    """A manager-style gRPC server (real pools) on an ephemeral port; yields its address."""
    metrics = Metrics()
    functions = [FunctionConfig(name, "python", f"index.{handler}", CODEDIR) for name, handler in
                 [("echo", "echo"), ("nothing", "nothing"), ("fails", "fails"), ("raw", "raw"), ("sleeps", "sleeps")]]
    runners: dict[str, Runner] = {f.name: Pool(f, socket_dir=socket_dir, stats=metrics.function(f.name)) for f in functions}
    await asyncio.gather(*(r.start() for r in runners.values()))  # type: ignore[attr-defined]
    server = FunctionServer(ServerConfig("127.0.0.1:0"), runners)
    await server.start()
    yield server.address
    await server.stop(1)
    await asyncio.gather(*(r.stop(1) for r in runners.values()))  # type: ignore[attr-defined]


# -- through an address ---------------------------------------------------------------------


async def test_the_result_goes_to_stdout_as_is_with_exit_0(address: str) -> None:
    done = await edgefn_call("echo", "--data", '{"a": [1, 2]}', "--address", address)
    assert (done.code, orjson.loads(done.stdout)) == (0, {"a": [1, 2]}), done.stderr
    done = await edgefn_call("raw", "--address", address, "--raw")
    assert (done.code, done.stdout) == (0, b"\x00raw\xff")
    done = await edgefn_call("raw", "--address", address)
    assert (done.code, done.stdout) == (0, b"\x00raw\xff\n")  # a terminal's prompt starts on its own line


async def test_an_empty_result_prints_nothing_and_says_so_on_stderr(address: str) -> None:
    done = await edgefn_call("nothing", "--address", address)
    assert (done.code, done.stdout) == (0, b"")
    assert done.stderr.strip() == "edgefn call: nothing: the result is empty; nothing would be published"


async def test_a_function_error_prints_the_envelope_to_stderr_with_exit_1(address: str) -> None:
    done = await edgefn_call("fails", "--data", "7", "--topic", "t/x", "--qos", "1", "--address", address)
    assert (done.code, done.stdout) == (1, b"")
    body = done.envelope
    assert (body["errorType"], body["errorMessage"]) == ("ValueError", "bad input 7")
    message = body["functionMessage"]
    assert (message["Topic"], message["QOS"], base64.b64decode(message["Payload"])) == ("t/x", 1, b"7")
    assert len(message["FunctionInvokeID"]) == 36


async def test_data_comes_from_a_file_or_stdin(address: str, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(b'{"from": "file"}')
    done = await edgefn_call("echo", "--data", f"@{payload}", "--address", address)
    assert orjson.loads(done.stdout) == {"from": "file"}
    done = await edgefn_call("echo", "--data", "@-", "--address", address, stdin=b'{"from": "stdin"}')
    assert orjson.loads(done.stdout) == {"from": "stdin"}


async def test_no_answer_within_timeout_is_a_timeout_envelope(address: str) -> None:
    done = await edgefn_call("sleeps", "--data", "5", "--timeout", "300ms", "--address", address)
    assert done.code == 1 and done.envelope["errorType"] == "Runtime.Timeout"


async def test_an_unknown_function_exits_2_naming_it(address: str) -> None:
    done = await edgefn_call("nope", "--address", address)
    assert done.code == 2 and "'nope'" in done.stderr and "echo" in done.stderr


async def test_an_unreachable_address_exits_2(socket_dir: Path) -> None:
    done = await edgefn_call("echo", "--address", f"unix://{socket_dir}/nobody.sock")
    assert done.code == 2 and "cannot reach" in done.stderr


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert (await edgefn_call("echo", "--data", f"@{tmp_path}/missing")).code == 2
    assert (await edgefn_call("echo", "--address", "no-port")).code == 2
    assert (await edgefn_call("echo", "--cert", "c.pem")).code == 2
    assert (await edgefn_call("echo", "--timeout", "soon")).code == 2
    assert (await edgefn_call("echo", "--address", "a:1", "--config", "c.yml")).code == 2


async def test_a_runtimes_own_address_works_and_its_fault_becomes_an_envelope(socket_dir: Path) -> None:
    where = f"unix://{socket_dir}/runtime.sock"
    async with python_runtime(where, "fails", "index.fails", CODEDIR):
        done = await edgefn_call("fails", "--data", '"x"', "--address", where)
    assert done.code == 1
    assert done.envelope["errorType"] == "ValueError"
    assert done.envelope["functionMessage"]["FunctionName"] == "fails"


# -- TLS --------------------------------------------------------------------------------------


def make_certs(folder: Path) -> Path:
    """A throwaway CA with a server certificate for 127.0.0.1 and a client certificate."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=30)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=edgefn test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}")
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{who}.pem", "-days", "1", "-extfile", f"{who}.ext")
    return folder


async def test_mutual_tls_with_ca_cert_and_key(socket_dir: Path, tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    function = FunctionConfig("echo", "python", "index.echo", CODEDIR)
    pool = Pool(function, socket_dir=socket_dir, stats=Metrics().function("echo"))
    server = FunctionServer(
        ServerConfig("127.0.0.1:0", ca=certs / "ca.pem", cert=certs / "server.pem", key=certs / "server.key"),
        {"echo": pool},
    )
    await server.start()
    try:
        tls = ("--ca", str(certs / "ca.pem"), "--cert", str(certs / "client.pem"), "--key", str(certs / "client.key"))
        done = await edgefn_call("echo", "--data", "[3]", "--address", server.address, *tls)
        assert (done.code, done.stdout) == (0, b"[3]\n"), done.stderr
        refused = await edgefn_call("echo", "--address", server.address, "--ca", str(certs / "ca.pem"))
        assert refused.code == 2
    finally:
        await server.stop(1)
        await pool.stop(5)


# -- --config: locally, no broker, no server ----------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "edgefn.yml"
    path.write_text(yaml.safe_dump({
        # A hub nobody listens on: --config must never connect to it.
        "hub": {"address": "tcp://127.0.0.1:1"},
        "functions": [
            {"name": "echo", "runtime": "python", "handler": "index.echo", "codedir": str(CODEDIR)},
            {"name": "chatty", "runtime": "python", "handler": "index.chatty", "codedir": str(CODEDIR),
             "instance": {"min": 3, "max": 3}},
            {"name": "broken", "runtime": "python", "handler": "index.handler",
             "codedir": str(FUNCTIONS / "grpc_import_error")},
            {"name": "slow", "runtime": "python", "handler": "index.sleeps", "codedir": str(CODEDIR),
             "instance": {"timeout": "300ms"}},
            {"name": "filter", "runtime": "sql", "handler": "select n * 2 as double where n > 0"},
        ],
    }))
    return path


async def test_config_runs_the_function_locally(config: Path) -> None:
    done = await edgefn_call("echo", "--config", str(config), "--data", '{"local": true}')
    assert (done.code, orjson.loads(done.stdout)) == (0, {"local": True}), done.stderr


async def test_config_shows_the_handlers_output_on_stderr_only(config: Path) -> None:
    done = await edgefn_call("chatty", "--config", str(config))
    assert (done.code, orjson.loads(done.stdout)) == (0, {"ok": True}), done.stderr
    assert "hello from the handler" in done.stderr and "and from its stderr" in done.stderr


async def test_config_reports_a_handler_that_cannot_load_as_an_envelope(config: Path) -> None:
    done = await edgefn_call("broken", "--config", str(config))
    assert done.code == 1
    assert done.envelope["errorType"] == "Runtime.ImportModuleError"
    assert "edgefn_no_such_module" in done.envelope["errorMessage"]


async def test_config_applies_the_functions_timeout(config: Path) -> None:
    done = await edgefn_call("slow", "--config", str(config), "--data", "5")
    assert done.code == 1 and done.envelope["errorType"] == "Runtime.Timeout"


async def test_config_runs_sql_functions(config: Path) -> None:
    done = await edgefn_call("filter", "--config", str(config), "--data", '{"n": 4}')
    assert (done.code, orjson.loads(done.stdout)) == (0, {"double": 8}), done.stderr
    done = await edgefn_call("filter", "--config", str(config), "--data", '{"n": -1}')
    assert (done.code, done.stdout) == (0, b"")


async def test_config_errors_and_unknown_functions_exit_2(config: Path, tmp_path: Path) -> None:
    done = await edgefn_call("nope", "--config", str(config))
    assert done.code == 2 and "'nope'" in done.stderr and "echo" in done.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("functions:\n  - name: x\n    runtime: cobol\n")
    done = await edgefn_call("x", "--config", str(bad))
    assert done.code == 2 and "functions[0]" in done.stderr


# -- polish: what a newcomer sees -----------------------------------------------------------


async def test_a_sql_filter_that_drops_the_message_says_so_on_stderr(config: Path) -> None:
    done = await edgefn_call("filter", "--config", str(config), "--data", '{"n": -1}')
    assert (done.code, done.stdout) == (0, b"")
    assert "WHERE filtered the message out" in done.stderr


async def test_data_that_is_not_json_is_a_usage_error_unless_raw(config: Path) -> None:
    done = await edgefn_call("echo", "--config", str(config), "--data", "{oops")
    assert done.code == 2 and "--data is not JSON" in done.stderr and "--raw" in done.stderr
    done = await edgefn_call("echo", "--config", str(config), "--data", "{oops", "--raw")
    assert (done.code, done.stdout) == (0, b"{oops"), done.stderr


async def test_timeout_counts_the_call_not_the_cold_start(tmp_path: Path) -> None:
    path = tmp_path / "edgefn.yml"
    path.write_text(yaml.safe_dump({"functions": [
        {"name": "slow", "runtime": "python", "handler": "index.handler", "codedir": str(FUNCTIONS / "slow_import")},
    ]}))
    done = await edgefn_call("slow", "--config", str(path), "--data", "[1]", "--timeout", "500ms")
    assert (done.code, done.stdout) == (0, b"[1]\n"), done.stderr


async def test_a_tiny_timeout_fails_cleanly_without_asyncio_noise(config: Path) -> None:
    done = await edgefn_call("slow", "--config", str(config), "--data", "1", "--timeout", "1ms")
    assert done.code == 1 and done.envelope["errorType"] == "Runtime.Timeout"
    assert "Traceback" not in done.stderr and "AssertionError" not in done.stderr and "asyncio" not in done.stderr


async def test_a_local_node_call_prints_no_runtime_lines(tmp_path: Path) -> None:
    path = tmp_path / "edgefn.yml"
    path.write_text(yaml.safe_dump({"functions": [
        {"name": "echo", "runtime": "node", "handler": "index.echo", "codedir": str(FUNCTIONS / "node_pool")},
    ]}))
    done = await edgefn_call("echo", "--config", str(path), "--data", '{"a": 1}')
    assert (done.code, done.stdout, done.stderr) == (0, b'{"a":1}\n', "")
