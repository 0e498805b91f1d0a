"""runtime: custom — any executable serving baetyl.Function on its address (Baetyl's convention).

The runtime here is a Baetyl-style one written for the test: no handshake line,
unary Call only, its functions in its own service.yml, plain-text errors.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from edgefn.manager.config import ConfigError, FunctionConfig, InstanceConfig, load_config
from edgefn.manager.message import Call
from edgefn.manager.metrics import Metrics
from edgefn.manager.runners import build_runner, check_function
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from support.manager import FUNCTIONS

pytestmark = pytest.mark.timeout(60)

BAETYL = FUNCTIONS / "baetyl_runtime"


def custom(name: str = "sayhi", **instance: object) -> FunctionConfig:
    return FunctionConfig(
        name, "custom", "", BAETYL,
        instance=InstanceConfig(**{"timeout": 10.0, "starttimeout": 10.0, **instance}),  # type: ignore[arg-type]
        command=(sys.executable, "runtime.py", "-c", "service.yml"),
    )


def call(function: str, event: object) -> Call:
    return Call(7, 1, "t/in", orjson.dumps(event), int(time.time()), function, str(uuid.uuid4()))


async def test_a_baetyl_style_runtime_without_handshake_answers_calls(socket_dir: Path) -> None:
    runner = build_runner(custom(min=1), socket_dir=socket_dir, stats=Metrics().function("sayhi"))
    await runner.start()
    try:
        result = orjson.loads(await runner.call(call("sayhi", {"n": 1})))
        assert result == {"hi": {"n": 1}, "functionName": "sayhi", "instanceName": "sayhi"}
        with pytest.raises(Fault) as caught:  # Baetyl's "[UserCodeInvoke]" text: the class and message recovered
            await runner.call(call("sayhi", {"err": "no greeting"}))
        assert (caught.value.error_type, caught.value.message) == ("TypeError", "no greeting")
        assert not caught.value.retriable
    finally:
        await runner.stop(5)


async def test_plain_text_errors_are_runtime_unknown_with_the_text(socket_dir: Path) -> None:
    runner = build_runner(custom("nosuch"), socket_dir=socket_dir, stats=Metrics().function("nosuch"))
    await runner.start()
    try:
        with pytest.raises(Fault) as caught:
            await runner.call(call("nosuch", {}))
        assert caught.value.error_type == faults.UNKNOWN_FAULT and "function not found" in caught.value.message
    finally:
        await runner.stop(5)


async def test_a_killed_custom_instance_is_replaced_and_the_call_fails_retriably(socket_dir: Path) -> None:
    runner = build_runner(custom(min=1), socket_dir=socket_dir, stats=Metrics().function("sayhi"))
    await runner.start()
    try:
        (instance,) = runner.instances  # type: ignore[attr-defined]
        assert instance.pid is not None
        os.kill(instance.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while not (len(runner.instances) == 1 and runner.instances[0] is not instance  # type: ignore[attr-defined]
                   and runner.instances[0].ready):  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the killed instance was not replaced"
            await asyncio.sleep(0.05)
        assert orjson.loads(await runner.call(call("sayhi", "again")))["hi"] == "again"
    finally:
        await runner.stop(5)


async def test_a_runtime_that_never_listens_fails_its_start_within_starttimeout(socket_dir: Path, tmp_path: Path) -> None:
    function = FunctionConfig("mute", "custom", "", tmp_path, instance=InstanceConfig(starttimeout=0.5, timeout=5),
                              command=(sys.executable, "-c", "import time; time.sleep(60)"))
    runner = build_runner(function, socket_dir=socket_dir, stats=Metrics().function("mute"))
    await runner.start()
    started = time.monotonic()
    try:
        with pytest.raises(Fault) as caught:
            await runner.call(call("mute", {}))
        assert caught.value.error_type == faults.UNAVAILABLE_FAULT and "starttimeout" in caught.value.message
        assert time.monotonic() - started < 5
    finally:
        await runner.stop(2)


async def test_check_reports_a_command_that_is_not_executable(tmp_path: Path) -> None:
    function = FunctionConfig("gone", "custom", "", tmp_path, command=(str(tmp_path / "no-such-runtime"),))
    problem = await check_function(function, tmp_path)
    assert problem is not None and problem.error_type == faults.UNAVAILABLE_FAULT
    assert "no-such-runtime" in problem.message
    assert await check_function(custom(), tmp_path) is None


def write(folder: Path, text: str) -> Path:
    path = folder / "edgefn.yml"
    path.write_text(text)
    return path


def test_config_takes_command_relative_to_the_file_with_variables(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    config = load_config(write(tmp_path, """
functions:
  - name: f
    runtime: custom
    command: [bin/runtime, --port, "${PORT_FLAG}"]
    env: {A: b}
"""), environ={"PORT_FLAG": "7"})
    function = config.function("f")
    assert function.command == (str(tmp_path / "bin" / "runtime"), "--port", "7")
    assert function.codedir == tmp_path and function.handler == "" and not function.handshake


@pytest.mark.parametrize(("text", "path", "fragment"), [
    ("  - {name: f, runtime: custom}\n", "functions[0].command", "missing"),
    ("  - {name: f, runtime: custom, command: []}\n", "functions[0].command", "empty list"),
    ("  - {name: f, runtime: python, handler: index.h, codedir: ., command: [x]}\n", "functions[0].command",
     "only runtime: custom"),
    ("  - {name: f, runtime: pyhton, handler: index.h, codedir: .}\n", "functions[0].runtime", "did you mean 'python'"),
])
def test_bad_custom_configs_name_the_key(tmp_path: Path, text: str, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "functions:\n" + text))
    (problem,) = caught.value.problems
    assert problem.path == path and fragment in problem.message


def test_baetyl_spellings_load_with_warnings_naming_edgefns(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    config = load_config(write(tmp_path, """
hub: {address: tcp://127.0.0.1:1883, keepalive: -1}
functions:
  - {name: a, runtime: python36, handler: index.h, codedir: code, timeout: 5s, message: {length: {max: 1m}}}
  - {name: b, runtime: node85, handler: index.h, codedir: code, backoff: {max: 2s}, instance: {max: 3}}
  - {name: c, runtime: python27, handler: index.h, codedir: code}
"""))
    assert config.hub.keepalive == 0
    a, b, c = config.functions
    assert (a.runtime, b.runtime, c.runtime) == ("python", "node", "python")
    assert (a.instance.timeout, a.instance.message_max) == (5.0, 1024 * 1024)
    assert (b.instance.backoff_max, b.instance.max) == (2.0, 3)
    warnings = {problem.path: problem.message for problem in config.warnings}
    assert "runtime: python" in warnings["functions[0].runtime"]
    assert "runtime: node" in warnings["functions[1].runtime"]
    assert "instance.timeout" in warnings["functions[0].timeout"]
    assert "instance.backoff" in warnings["functions[1].backoff"]
    assert "keepalive: 0" in warnings["hub.keepalive"]


def test_a_key_set_both_on_the_function_and_under_instance_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "functions:\n  - {name: a, runtime: python, handler: index.h, codedir: code, "
                                    "timeout: 5s, instance: {timeout: 6s}}\n"))
    (problem,) = caught.value.problems
    assert problem.path == "functions[0].timeout" and "keep instance.timeout" in problem.message
