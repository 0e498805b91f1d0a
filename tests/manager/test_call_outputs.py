"""``edgefn call`` prints each output on its own line as it arrives, then the result."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import yaml
from edgefn.manager.config import FunctionConfig, InstanceConfig, ServerConfig
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.manager.runners import Runner
from edgefn.manager.server import FunctionServer
from support.processes import python_runtime

CODEDIR = Path(__file__).resolve().parent.parent / "functions" / "outputs"

pytestmark = pytest.mark.timeout(60)


async def edgefn_call(*args: str) -> tuple[int, list[tuple[float, bytes]], str]:
    """``edgefn call ARGS``: its exit status, its stdout lines with their arrival times, its stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgefn", "call", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(40):
            errors = asyncio.create_task(process.stderr.read(), name="test-call-stderr")
            async for line in process.stdout:
                lines.append((loop.time(), line))
            await process.wait()
            stderr = (await errors).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, lines, stderr


@pytest.fixture
async def address(socket_dir: Path) -> AsyncIterator[str]:
    metrics = Metrics()
    functions = [FunctionConfig(name, "python", f"index.{handler}", CODEDIR, instance=InstanceConfig(min=1))
                 for name, handler in [("publishes", "publishes"), ("slow", "slow"), ("fails", "then_fails")]]
    runners: dict[str, Runner] = {f.name: Pool(f, socket_dir=socket_dir, stats=metrics.function(f.name)) for f in functions}
    await asyncio.gather(*(r.start() for r in runners.values()))  # type: ignore[attr-defined]
    server = FunctionServer(ServerConfig("127.0.0.1:0"), runners)
    await server.start()
    yield server.address
    await server.stop(1)
    await asyncio.gather(*(r.stop(1) for r in runners.values()))  # type: ignore[attr-defined]


async def test_remote_call_prints_each_output_on_its_own_line_then_the_result(address: str) -> None:
    code, lines, stderr = await edgefn_call("publishes", "--data", '{"n": 2}', "--topic", "in/t", "--address", address)
    assert code == 0, stderr
    assert [line for _, line in lines] == [b'{"i":0}\n', b'{"i":1}\n', b"raw\n", b'{"done":"in/t","dict":true}\n']


async def test_remote_outputs_are_printed_as_they_arrive(address: str) -> None:
    code, lines, stderr = await edgefn_call("slow", "--data", '{"n": 3, "every": 0.5}', "--address", address)
    assert code == 0, stderr
    assert len(lines) == 4
    assert lines[0][0] < lines[-1][0] - 0.6  # the first output long before the result


async def test_remote_failure_after_outputs_prints_them_then_the_envelope_with_exit_1(address: str) -> None:
    code, lines, stderr = await edgefn_call("fails", "--address", address)
    assert code == 1
    assert [line for _, line in lines] == [b'{"before":1}\n']
    assert orjson.loads(stderr.strip().splitlines()[-1])["errorType"] == "RuntimeError"


async def test_a_runtimes_own_address_has_no_callstream_and_gives_the_result_alone(socket_dir: Path) -> None:
    where = f"unix://{socket_dir}/runtime.sock"
    async with python_runtime(where, "publishes", "index.publishes", CODEDIR):
        code, lines, stderr = await edgefn_call("publishes", "--address", where)
    assert code == 0, stderr
    assert [line for _, line in lines] == [b'{"done":"","dict":true}\n']  # the result too ends its line


async def test_config_call_prints_the_outputs_too(tmp_path: Path) -> None:
    config = tmp_path / "edgefn.yml"
    config.write_text(yaml.safe_dump({
        "hub": {"address": "tcp://127.0.0.1:1"},  # never connected to
        "functions": [{"name": "steps", "runtime": "python", "handler": "index.generates", "codedir": str(CODEDIR)}],
    }))
    code, lines, stderr = await edgefn_call("steps", "--config", str(config), "--data", '{"n": 2}')
    assert code == 0, stderr
    assert [line for _, line in lines] == [b'{"step":0}\n', b'{"step":1}\n']  # a generator's result is empty
