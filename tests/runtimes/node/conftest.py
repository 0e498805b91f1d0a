"""Real `node runtimes/node/index.js` processes, called over real gRPC.

The `node_runtime` fixture starts instances the way the manager does (cwd =
codedir, address in the environment or on the command line), reads their
handshake line, and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from edgefn.wire import function_pb2, function_pb2_grpc

REPO = Path(__file__).resolve().parents[3]
RUNTIME = REPO / "runtimes" / "node" / "index.js"
FUNCTIONS = REPO / "tests" / "functions"
HANDSHAKE_TIMEOUT = 15.0
CALL_TIMEOUT = 10.0


def node_executable() -> str:
    """The `node` on PATH; a clear failure (never a skip) when it is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the Node runtime tests need Node.js 18+ (CI must install it)")
    if not (RUNTIME.parent / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("runtimes/node/node_modules is missing: run `npm ci --prefix runtimes/node`")
    return node


def read_line(stream: Any, timeout: float) -> str:
    """One line from a pipe, or '' at EOF; fails the test past `timeout`."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                pytest.fail(f"no line on the runtime's stdout within {timeout}s (got {data!r})")
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                break
            data += chunk
    finally:
        selector.close()
    return data.decode()


@dataclass
class NodeInstance:
    """One runtime process, its handshake and a channel to it."""

    process: subprocess.Popen[bytes]
    handshake: dict[str, Any]
    stderr_path: Path
    address: str = ""
    channel: grpc.Channel | None = None
    stub: function_pb2_grpc.FunctionStub | None = None
    extra_channels: list[grpc.Channel] = field(default_factory=list)

    def connect(self, message_max: int = 4 * 1024 * 1024) -> None:
        limit = message_max + 64 * 1024
        target = self.address if self.address.startswith("unix:") else self.handshake["address"]
        self.channel = grpc.insecure_channel(
            target,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        self.stub = function_pb2_grpc.FunctionStub(self.channel)

    def call(self, payload: bytes = b"", **fields: Any) -> function_pb2.FunctionMessage:
        """A unary Call; raises grpc.RpcError when the call fails."""
        assert self.stub is not None
        request = message(payload, **fields)
        return self.stub.Call(request, timeout=CALL_TIMEOUT)

    def call_json(self, event: Any, **fields: Any) -> Any:
        """A Call with a JSON event; the decoded JSON result (None for an empty one)."""
        reply = self.call(json.dumps(event).encode(), **fields)
        return json.loads(reply.Payload) if reply.Payload else None

    def call_fails(self, payload: bytes = b"", **fields: Any) -> tuple[grpc.StatusCode, dict[str, Any]]:
        """A Call that must fail: its status code and JSON details."""
        with pytest.raises(grpc.RpcError) as info:
            self.call(payload, **fields)
        error = info.value
        return error.code(), json.loads(error.details())  # type: ignore[attr-defined]

    def talk(self, payloads: Sequence[bytes], timeout: float = CALL_TIMEOUT) -> dict[int, function_pb2.FunctionMessage]:
        """Pipelines every payload on one Talk stream (Sequence 1..n); replies by Sequence."""
        assert self.stub is not None
        requests = [message(payload, Sequence=n, ID=100 + n) for n, payload in enumerate(payloads, 1)]
        replies = {reply.Sequence: reply for reply in self.stub.Talk(iter(requests), timeout=timeout)}
        return replies

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for_stderr(self, text: str, timeout: float = 10.0) -> None:
        """Waits until `text` shows up on the runtime's stderr (the log is a file: polled)."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} never reached stderr:\n{self.stderr()}")
            if self.process.poll() is not None and text not in self.stderr():
                pytest.fail(f"the runtime exited ({self.process.returncode}) before {text!r}:\n{self.stderr()}")
            time.sleep(0.01)

    def wait(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        for channel in [self.channel, *self.extra_channels]:
            if channel is not None:
                channel.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.stdin is not None:
            self.process.stdin.close()


def message(payload: bytes = b"", **fields: Any) -> function_pb2.FunctionMessage:
    """A FunctionMessage with recognisable defaults."""
    values: dict[str, Any] = {
        "ID": 7,
        "QOS": 1,
        "Topic": "t/in",
        "Timestamp": 1795285009,
        "FunctionName": "",
        "FunctionInvokeID": str(uuid.uuid4()),
    }
    values.update(fields)
    return function_pb2.FunctionMessage(Payload=payload, **values)


@dataclass
class Spawner:
    """Starts runtime instances and owns them until the test ends."""

    node: str
    workdir: Path
    cache_home: Path
    instances: list[NodeInstance] = field(default_factory=list)

    def socket(self) -> str:
        return f"unix://{self.workdir}/{uuid.uuid4().hex[:8]}.sock"

    def spawn(
        self,
        case: str,
        handler: str = "index.handler",
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        address: str | None = "",
        parent_pipe: bool = False,
        cwd: Path | None = None,
    ) -> NodeInstance:
        """Starts `node index.js` for tests/functions/<case> and reads its handshake.

        address "" picks a fresh unix socket passed in EDGEFN_INSTANCE_ADDRESS;
        None passes no address at all (check mode, or via `args`). cwd defaults
        to the codedir, as the manager runs it.
        """
        codedir = (FUNCTIONS / case).resolve()
        environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir), "XDG_CACHE_HOME": str(self.cache_home)}
        if address == "":
            address = self.socket()
        if address is not None:
            environ["EDGEFN_INSTANCE_ADDRESS"] = address
        if parent_pipe:
            environ["EDGEFN_PARENT_PIPE"] = "1"
        environ.update(env or {})
        stderr_path = self.workdir / f"{codedir.name}-{uuid.uuid4().hex[:6]}.stderr"
        # Append mode: the runtime reopens its stderr for fd 1, and two descriptions
        # of one file only interleave without overwriting when both append.
        with open(stderr_path, "ab") as stderr:
            process = subprocess.Popen(
                [self.node, str(RUNTIME), "--name", codedir.name, "--handler", handler, *args],
                cwd=cwd or codedir,
                env=environ,
                stdin=subprocess.PIPE if parent_pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        instance = NodeInstance(process, {}, stderr_path, address or "")
        self.instances.append(instance)
        line = read_line(process.stdout, HANDSHAKE_TIMEOUT)
        assert line, f"no handshake; stderr:\n{instance.stderr()}"
        instance.handshake = json.loads(line)
        return instance

    def start(self, case: str, handler: str = "index.handler", **kwargs: Any) -> NodeInstance:
        """spawn() that expects a ready runtime, connected."""
        message_max = kwargs.pop("message_max", 4 * 1024 * 1024)
        instance = self.spawn(case, handler, **kwargs)
        assert instance.handshake.get("ready") is True, instance.handshake
        instance.connect(message_max)
        return instance

    def close(self) -> None:
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGTERM)
        for instance in self.instances:
            try:
                instance.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            instance.close()


@pytest.fixture(scope="session")
def node_cache_home() -> Iterator[Path]:
    """XDG_CACHE_HOME for the session's runtimes: the code cache never lands in the real home."""
    path = Path(tempfile.mkdtemp(prefix="efn-node-cache-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node_runtime(node_cache_home: Path) -> Iterator[Spawner]:
    """Starts Node runtime instances for one test; none outlives it."""
    node = node_executable()
    workdir = Path(tempfile.mkdtemp(prefix="efn-node-"))  # short: unix socket paths are capped
    spawner = Spawner(node, workdir, node_cache_home)
    try:
        yield spawner
    finally:
        spawner.close()
        shutil.rmtree(workdir, ignore_errors=True)
