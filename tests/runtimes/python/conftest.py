"""Real Python runtime processes on unix sockets in short temp dirs, and clients for them."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
import orjson
import pytest

from edgefn.wire import function_pb2, function_pb2_grpc

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
START_TIMEOUT = 20.0
FunctionMessage = function_pb2.FunctionMessage


@dataclass
class Runtime:
    """One runtime process: its handshake, its stderr lines, a stub on its address."""

    process: asyncio.subprocess.Process
    handshake: dict[str, object]
    stderr: list[str] = field(default_factory=list)
    _stderr_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _channel: grpc.aio.Channel | None = None

    @property
    def address(self) -> str:
        return str(self.handshake["address"])

    @property
    def stub(self) -> function_pb2_grpc.FunctionStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address)
        return function_pb2_grpc.FunctionStub(self._channel)

    async def call(self, payload: bytes = b"", **fields: object) -> FunctionMessage:
        """One unary Call; raises grpc.aio.AioRpcError on a failed call."""
        return await asyncio.wait_for(self.stub.Call(FunctionMessage(Payload=payload, **fields)), 15)

    async def exit_code(self, timeout: float = 15) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stderr_line(self, containing: str, timeout: float = 15, *, nth: int = 1) -> str:
        """Wait for the ``nth`` stderr line containing ``containing``."""

        async def seek() -> str:
            while True:
                found = [line for line in self.stderr if containing in line]
                if len(found) >= nth:
                    return found[nth - 1]
                self._stderr_changed.clear()
                await self._stderr_changed.wait()

        return await asyncio.wait_for(seek(), timeout)

    async def collect_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr.append(line.decode(errors="replace"))
            self._stderr_changed.set()
        self._stderr_changed.set()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def runtime_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    env.update(extra or {})
    return env


Spawn = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def spawn(sockdir: str) -> AsyncIterator[Spawn]:
    """Start runtimes: ``await spawn("echo", "index.handler", args=[...], env={...})``.

    Waits for the handshake line; every process is killed at teardown.
    """
    started: list[Runtime] = []
    tasks: list[asyncio.Task[None]] = []

    async def start(
        case: str,
        handler: str | None = "index.handler",
        *,
        args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        address: str | None = None,
        stdin: int | None = asyncio.subprocess.DEVNULL,
        expect_ready: bool = True,
    ) -> Runtime:
        argv = [sys.executable, "-I", "-m", "edgefn.runtimes.python"]
        if handler is not None:
            argv += ["--handler", handler]
        environment = runtime_env(env)
        if address is None and "EDGEFN_INSTANCE_ADDRESS" not in environment and "--check" not in args:
            if "BAETYL_SERVICE_INSTANCE_ADDRESS" not in environment:
                argv += ["--address", f"unix://{sockdir}/{len(started)}.sock"]
        elif address is not None:
            argv += ["--address", address]
        process = await asyncio.create_subprocess_exec(
            *argv,
            *args,
            cwd=FUNCTIONS / case,
            env=environment,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        runtime = Runtime(process, {})
        started.append(runtime)
        tasks.append(asyncio.create_task(runtime.collect_stderr(), name="test-runtime-stderr"))
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        assert line, f"no handshake; stderr: {''.join(runtime.stderr)}"
        runtime.handshake = orjson.loads(line)
        if expect_ready:
            assert runtime.handshake["ready"] is True, runtime.handshake
        return runtime

    try:
        yield start
    finally:
        for runtime in started:
            await runtime.close()
        for task in tasks:
            await asyncio.wait_for(task, 5)
