"""The edgefn command: --version, check, and run's refusals (SPEC §2)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edgefn import __version__
from support.broker import free_port
from support.manager import FUNCTIONS, ManagerProcess, python_function, write_config

pytestmark = pytest.mark.timeout(60)


def edgefn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgefn", *args], capture_output=True, text=True,
                          timeout=50, env=env, stdin=subprocess.DEVNULL)


def config(folder: Path, functions: list[dict], **extra: object) -> Path:
    rules = [{"subscribe": {"topic": f"t/{f['name']}"}, "function": {"name": f["name"]},
              "publish": {"topic": f"t/{f['name']}/out"}} for f in functions]
    return write_config(folder, {"hub": {"embedded": {"port": free_port()}}, "rules": rules,
                                 "functions": functions, **extra})


def test_version_names_the_release() -> None:
    done = edgefn("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"edgefn {__version__}")


def test_check_passes_a_good_config_and_exits_0(tmp_path: Path) -> None:
    done = edgefn("check", str(config(tmp_path, [
        python_function("hi", "e2e", "index.echo"),
        {"name": "filter", "runtime": "sql", "handler": "select qos() as qos, topic() as topic, * where id < 10"},
    ])))
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


def test_check_loads_every_handler_and_lists_every_problem_with_file_and_line(tmp_path: Path) -> None:
    done = edgefn("check", str(config(tmp_path, [
        python_function("broken", "e2e_syntax"),
        python_function("missing", "e2e", "index.nope"),
        {"name": "badsql", "runtime": "sql", "handler": "select a + where"},
    ])))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert "3 problem(s)" in lines[0]
    syntax = next(line for line in lines if "broken" in line)
    assert "Runtime.UserCodeSyntaxError" in syntax and "index.py" in done.stderr and "line 2" in done.stderr
    assert any("missing" in line and "Runtime.HandlerNotFound" in line and "nope" in line for line in lines)
    assert any("badsql" in line and "column" in line for line in lines)


def test_check_reports_config_problems_with_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("rules:\n  - subscribe: {topic: t, qos: 2}\n    function: {name: ghost}\n"
                    "    publish: {topic: 't/{2}'}\nfunctions:\n  - name: f\n    runtime: sql\n    handler: select *\n")
    done = edgefn("check", str(path))
    assert done.returncode == 1
    assert "bad.yml:3: rules[0].function.name: no function named 'ghost'" in done.stderr
    assert "bad.yml:4: rules[0].publish.topic: {2} names level 2, but the subscription's topics have 1 level" \
        in done.stderr


def test_check_without_node_names_what_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # a PATH with no node on it
    done = edgefn("check", str(config(tmp_path, [{"name": "js", "runtime": "node", "handler": "index.handler",
                                                  "codedir": str(FUNCTIONS.parent.parent / "functions" / "sayjs")}])),
                  env=env)
    assert done.returncode == 1
    assert "Node.js >= 18" in done.stderr and "install" in done.stderr


def test_run_refuses_a_bad_config_without_starting(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("hub: {embedded: {port: 0}}\nrules: []\nfunctions: []\n")
    done = edgefn("run", str(path))
    assert done.returncode == 1
    assert "problem" in done.stderr and "edgefn ready" not in done.stderr


def test_run_with_the_embedded_port_taken_names_hub_embedded_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, {"hub": {"embedded": {"port": port}},
                                       "functions": [python_function("hi", "e2e", "index.echo")]})
        done = edgefn("run", str(path))
    assert done.returncode == 1
    assert "hub.embedded.port" in done.stderr and str(port) in done.stderr


def test_json_logs_go_to_stderr_and_to_logger_path(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "edgefn.log"
    path = write_config(tmp_path, {"hub": {"embedded": {"port": free_port()}},
                                   "functions": [python_function("hi", "e2e", "index.echo")],
                                   "logger": {"format": "json", "path": "logs/edgefn.log"}})
    with ManagerProcess(path) as manager:
        manager.wait_ready(30)
        assert manager.stop() == 0
    records = [json.loads(line) for line in manager.lines if line.startswith("{")]
    assert any(record["msg"] == "edgefn ready" and record["level"] == "info" for record in records)
    assert {"ts", "level", "logger", "msg"} <= set(records[0])
    assert "edgefn ready" in log_file.read_text()
