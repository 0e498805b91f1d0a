"""The runtime instance protocol (docs/architecture.md), as the Node runtime keeps it."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from edgefn.runtimes import faults
from edgefn.wire import function_pb2

RUNTIME_DIR = Path(__file__).resolve().parents[3] / "runtimes" / "node"


def test_handshake_line_says_ready_with_pid_and_methods(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.asyncFn")
    assert instance.handshake == {
        "ready": True,
        "pid": instance.process.pid,
        "methods": ["Call", "Talk"],
        "concurrent": True,
        "batch": True,
        "address": instance.address,
    }
    assert node_runtime.start("js_styles", "index.value").handshake["concurrent"] is False


def test_check_mode_loads_reports_and_exits_without_serving(node_runtime: Any) -> None:
    instance = node_runtime.spawn("js_styles", "index.value", args=["--check"], address=None)
    assert instance.handshake == {"ready": True, "pid": instance.process.pid, "methods": ["Call", "Talk"], "concurrent": False}
    assert instance.wait() == 0


def test_check_mode_reports_a_load_fault_with_exit_3(node_runtime: Any) -> None:
    instance = node_runtime.spawn("js_syntax", args=["--check"], address=None)
    assert instance.handshake["ready"] is False
    assert instance.handshake["errorType"] == "Runtime.UserCodeSyntaxError"
    assert instance.wait() == 3


@pytest.mark.parametrize(
    ("case", "handler", "error_type", "message", "stack"),
    [
        ("js_styles", "index.nope", "Runtime.HandlerNotFound", "index.js exports nothing as 'nope', not a function", []),
        ("js_styles", "index.notFunction", "Runtime.HandlerNotFound", "index.js exports a number as 'notFunction', not a function", []),
        ("js_styles", "index", "Runtime.HandlerNotFound", "handler 'index' is not module.attribute (e.g. index.handler)", []),
        ("js_styles", "nomodule.handler", "Runtime.ImportModuleError", "Cannot find module 'nomodule' in", []),
        ("js_styles", "../js_state/index.handler", "Runtime.ImportModuleError", "module '../js_state/index' is outside the codedir", []),
        ("js_missing_dep", "index.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'not-installed-anywhere'", ["at Object.<anonymous> (index.js:1:17)"]),
        (
            "js_throws_on_load",
            "index.handler",
            "Runtime.ImportModuleError",
            "Error: config.json is missing",
            ["at loadConfig (index.js:4:9)", "at Object.<anonymous> (index.js:1:16)"],
        ),
        ("js_syntax", "index.handler", "Runtime.UserCodeSyntaxError", "Unexpected token ';' (index.js:2)", ["index.js:2", "  const x = ;", "            ^"]),
        ("js_syntax_esm", "index.handler", "Runtime.UserCodeSyntaxError", "Unexpected token ';' (index.mjs:4)", ["index.mjs:4", "const broken = {;", "                ^"]),
    ],
)
def test_load_fault_is_reported_in_the_handshake_and_exits_3(
    node_runtime: Any, case: str, handler: str, error_type: str, message: str, stack: list[str]
) -> None:
    instance = node_runtime.spawn(case, handler)
    assert instance.wait() == 3
    line = instance.handshake
    assert (line["ready"], line["errorType"]) == (False, error_type)
    assert line["errorMessage"].startswith(message)
    assert line["errorStack"] == stack
    assert f"cannot load the handler: {error_type}" in instance.stderr()  # for a human too


def test_address_from_baetyl_variable(node_runtime: Any) -> None:
    address = node_runtime.socket()
    instance = node_runtime.start("js_styles", "index.value", address=None, env={"BAETYL_SERVICE_INSTANCE_ADDRESS": address})
    assert instance.handshake["address"] == address
    instance.address = address
    instance.connect()
    assert instance.call(b"1").Payload == b'{"style":"value","event":1}'


def test_address_flag_wins_over_the_environment(node_runtime: Any) -> None:
    address = node_runtime.socket()
    instance = node_runtime.start(
        "js_styles", "index.value", args=["--address", address], env={"BAETYL_SERVICE_INSTANCE_ADDRESS": "unix:///nonexistent/x.sock"}
    )
    assert instance.handshake["address"] == address


@pytest.mark.parametrize("form", ["tcp://127.0.0.1:0", "127.0.0.1:0"])
def test_tcp_address_forms_report_the_bound_port(node_runtime: Any, form: str) -> None:
    instance = node_runtime.start("js_styles", "index.value", address=form)
    host, _, port = instance.handshake["address"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert instance.call(b"2").Payload == b'{"style":"value","event":2}'


def test_relative_unix_address_and_codedir_flag(node_runtime: Any) -> None:
    codedir = str(Path(__file__).resolve().parents[2] / "functions" / "js_styles")
    instance = node_runtime.start(
        "js_styles", "index.value", address="unix:rel.sock", cwd=node_runtime.workdir, args=["--codedir", codedir]
    )
    assert (node_runtime.workdir / "rel.sock").exists()
    instance.address = f"unix://{node_runtime.workdir}/rel.sock"
    instance.connect()
    assert instance.call(b"3").Payload == b'{"style":"value","event":3}'


@pytest.mark.parametrize(
    ("args", "env", "complaint"),
    [
        ([], {}, "no address"),
        (["--bogus"], {"EDGEFN_INSTANCE_ADDRESS": "127.0.0.1:0"}, "unknown argument"),
        (["--address", "nowhere"], {}, "bad address"),
        (["--address", "127.0.0.1:0", "--message-max", "lots"], {}, "bad message size"),
        (["--address"], {}, "--address needs a value"),
    ],
)
def test_bad_command_line_exits_2(node_runtime: Any, args: list[str], env: dict[str, str], complaint: str) -> None:
    node = node_runtime.node
    result = subprocess.run(
        [node, str(RUNTIME_DIR / "index.js"), "--handler", "index.value", *args],
        cwd=Path(__file__).resolve().parents[2] / "functions" / "js_styles",
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        timeout=15,
    )
    assert result.returncode == 2
    assert complaint in result.stderr.decode()
    assert result.stdout == b""


def test_address_in_use_fails_the_handshake_with_exit_1(node_runtime: Any) -> None:
    first = node_runtime.start("js_styles", "index.value", address="127.0.0.1:0")
    second = node_runtime.spawn("js_styles", "index.value", address=first.handshake["address"])
    assert second.handshake["ready"] is False
    assert second.handshake["errorType"] == "Runtime.Unavailable"
    assert second.wait() == 1


def test_stdout_carries_only_the_handshake(node_runtime: Any) -> None:
    instance = node_runtime.start("js_console")
    assert instance.call(b"{}").Payload == b'"logged"'
    instance.process.send_signal(signal.SIGTERM)
    assert instance.wait() == 0
    assert instance.process.stdout.read() == b""  # nothing after the handshake line
    log = instance.stderr()
    for line in [
        "console.log while loading",
        "process.stdout.write while loading",
        "console.log in a call",
        "process.stdout.write in a call",
        "child process stdout",
    ]:
        assert line in log


def test_parent_pipe_eof_exits_at_once(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.value", parent_pipe=True)
    assert instance.call(b"1").Payload  # serving
    instance.process.stdin.close()
    assert instance.wait(timeout=5) == 0


def test_sigterm_drains_an_in_flight_call_and_exits_0(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.slow")
    future = instance.stub.Call.future(function_pb2.FunctionMessage(Payload=b'{"ms": 600, "n": 1}'), timeout=10)
    instance.wait_for_stderr("slow call 1 started")
    instance.process.send_signal(signal.SIGTERM)
    instance.wait_for_stderr("stopping")
    assert json.loads(future.result().Payload) == {"slept": 600}
    assert instance.wait() == 0


def test_sigterm_drains_an_in_flight_talk_call_then_ends_the_stream(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.slow")
    requests = _OpenStream([function_pb2.FunctionMessage(Payload=b'{"ms": 600, "n": 2}', Sequence=1)])
    replies = instance.stub.Talk(requests, timeout=10)
    instance.wait_for_stderr("slow call 2 started")
    instance.process.send_signal(signal.SIGTERM)
    answers = list(replies)  # the stream ends (status OK) once the call is answered
    requests.close()
    assert [(a.Sequence, a.Code, json.loads(a.Payload)) for a in answers] == [(1, 0, {"slept": 600})]
    assert replies.code() == grpc.StatusCode.OK
    assert instance.wait() == 0


def test_sigterm_when_idle_exits_0(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.value")
    instance.process.send_signal(signal.SIGTERM)
    assert instance.wait(timeout=5) == 0


def test_second_sigterm_cuts_the_drain_short(node_runtime: Any) -> None:
    instance = node_runtime.start("js_styles", "index.slow")
    future = instance.stub.Call.future(function_pb2.FunctionMessage(Payload=b'{"ms": 20000, "n": 3}'), timeout=30)
    instance.wait_for_stderr("slow call 3 started")
    instance.process.send_signal(signal.SIGTERM)
    instance.wait_for_stderr("stopping")
    instance.process.send_signal(signal.SIGTERM)
    assert instance.wait(timeout=5) == 1
    with pytest.raises(grpc.RpcError):
        future.result()


@pytest.mark.parametrize(
    ("handler", "logged"),
    [
        ("index.throwLater", "uncaught exception outside any call: Error: thrown after the answer"),
        ("index.rejectLater", "unhandled rejection outside any call: Error: rejected after the answer"),
    ],
)
def test_error_after_a_call_is_logged_and_the_runtime_goes_on(node_runtime: Any, handler: str, logged: str) -> None:
    instance = node_runtime.start("js_styles", handler)
    assert instance.call(b"{}").Payload == b'"answered"'
    instance.wait_for_stderr(logged)
    assert instance.call(b"{}").Payload == b'"answered"'


def test_fault_table_mirrors_faults_py(node_runtime: Any) -> None:
    script = "process.stdout.write(JSON.stringify(require(process.argv[1]).CODES))"
    result = subprocess.run(
        [node_runtime.node, "-e", script, str(RUNTIME_DIR / "faults.js")], capture_output=True, timeout=15, check=True
    )
    assert json.loads(result.stdout) == faults.CODES


class _OpenStream:
    """A request iterator that stays open (no half-close) until close()."""

    def __init__(self, requests: list[function_pb2.FunctionMessage]) -> None:
        self._queue: queue.Queue[function_pb2.FunctionMessage | None] = queue.Queue()
        for request in requests:
            self._queue.put(request)

    def __iter__(self) -> "_OpenStream":
        return self

    def __next__(self) -> function_pb2.FunctionMessage:
        item = self._queue.get(timeout=30)
        if item is None:
            raise StopIteration
        return item

    def close(self) -> None:
        self._queue.put(None)


def test_code_cache_is_written_once_then_reused(node_runtime: Any, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    first = node_runtime.start("js_styles", "index.value", env=env)
    assert first.call(b"1").Payload
    (blob,) = _wait_for_blob(tmp_path)
    assert blob.stat().st_mode & 0o777 == 0o600
    written = blob.stat().st_mtime_ns
    second = node_runtime.start("js_styles", "index.value", env=env)
    assert second.call(b"2").Payload == b'{"style":"value","event":2}'
    second.process.send_signal(signal.SIGTERM)
    assert second.wait() == 0
    assert blob.stat().st_mtime_ns == written  # nothing new to cache


def test_code_cache_others_may_write_is_ignored_and_replaced(node_runtime: Any, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    node_runtime.start("js_styles", "index.value", env=env)
    (blob,) = _wait_for_blob(tmp_path)
    blob.write_bytes(b"not a cache")
    blob.chmod(0o666)
    instance = node_runtime.start("js_styles", "index.value", env=env)
    assert instance.call(b"3").Payload == b'{"style":"value","event":3}'
    _wait_for_blob(tmp_path, mode=0o600)


def _wait_for_blob(home: Path, mode: int = 0o600, timeout: float = 10.0) -> list[Path]:
    """The code cache file once the runtime has written it with `mode` (it writes after the handshake)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        blobs = list(home.glob("edgefn/node-*/dependencies.bin"))
        if blobs and blobs[0].stat().st_mode & 0o777 == mode:
            return blobs
        time.sleep(0.01)
    pytest.fail(f"no code cache with mode {oct(mode)} under {home}")


def test_under_a_manager_a_load_fault_is_only_in_the_handshake(node_runtime: Any) -> None:
    # The manager logs the handshake's fault; the runtime repeating it would log every failed start twice.
    instance = node_runtime.spawn("js_syntax", "index.handler", parent_pipe=True)
    assert instance.wait() == 3
    assert instance.handshake["errorType"] == "Runtime.UserCodeSyntaxError"
    assert "cannot load the handler" not in instance.stderr()
