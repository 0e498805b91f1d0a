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


# -- help, and what run and dev do with a handler that does not load ------------------------


@pytest.mark.parametrize("command", ["run", "dev", "check", "call", "init", "schedule", "import-baetyl", "runtime"])
def test_every_command_has_a_description_and_a_working_help(command: str) -> None:
    done = edgefn(command, "--help")
    assert done.returncode == 0, done.stderr
    usage, _, rest = done.stdout.partition("\n\n")
    assert usage.startswith("usage: edgefn") and rest.strip(), done.stdout


@pytest.mark.parametrize("kind", ["python", "node", "sql"])
def test_every_runtime_has_a_working_help(kind: str) -> None:
    done = edgefn("runtime", kind, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: edgefn runtime {kind}") and "--address" in done.stdout


def test_a_misspelled_runtime_gets_a_did_you_mean() -> None:
    done = edgefn("runtime", "pyhton")
    assert done.returncode == 2 and "did you mean 'python'?" in done.stderr


def test_run_and_dev_take_a_log_level() -> None:
    for command in ("run", "dev"):
        assert "--log-level" in edgefn(command, "--help").stdout


# min 1: the instance's own start is the check; min 0: a --check process, as check does.
@pytest.mark.parametrize("warm", [1, 0])
def test_run_refuses_a_handler_that_does_not_load_with_checks_message(tmp_path: Path, warm: int) -> None:
    path = write_config(tmp_path, {"hub": {"embedded": {"port": free_port()}},
                                   "functions": [python_function("fine", "echo", instance={"min": 1}),
                                                 python_function("broken", "pool_syntax_error",
                                                                 instance={"min": warm})]})
    checked, ran = edgefn("check", str(path)), edgefn("run", str(path))
    assert ran.returncode == checked.returncode == 1
    assert ran.stderr == checked.stderr and "UserCodeSyntaxError" in ran.stderr
    assert "edgefn ready" not in ran.stderr


def test_dev_waits_for_a_fix_without_claiming_ready_and_logs_each_failure_once(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.py").write_text("def handler(event, context)\n    return event\n")
    path = write_config(tmp_path, {"hub": {"embedded": {"port": free_port()}},
                                   "functions": [{"name": "fix", "runtime": "python", "handler": "index.handler",
                                                  "codedir": str(code),
                                                  "instance": {"min": 1, "backoff": {"max": "1s"}}}]})
    with ManagerProcess(path, command="dev") as manager:
        manager.wait_for_log("waiting for the min instances of fix", 30)
        manager.wait_for_log("fix#3 failed to start", 30)
        assert "edgefn ready" not in manager.log
        # Once per backoff step: the runtime does not repeat the fault on its stderr.
        assert "cannot serve" not in manager.log, manager.log
        assert sum("failed to start" in line for line in manager.lines) == 3 or "fix#4" in manager.log
        (code / "index.py").write_text("def handler(event, context):\n    return event\n")
        manager.wait_ready(30)
        assert manager.stop() == 0


def test_the_start_up_summary_names_hub_rules_and_functions_with_fields_in_json(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, {
        "hub": {"embedded": {"port": port}},
        "rules": [{"clientid": "c2f", "subscribe": {"topic": "a/+", "qos": 1}, "function": {"name": "hi"},
                   "publish": {"topic": "b", "qos": 1}},
                  {"schedule": {"every": "1h"}, "function": {"name": "hi"}, "publish": {"topic": "c"}}],
        "functions": [python_function("hi", "e2e", "index.echo", instance={"min": 1, "max": 2})],
        "logger": {"format": "json"},
    })
    with ManagerProcess(path) as manager:
        manager.wait_ready(30)
        assert manager.stop() == 0
    records = [json.loads(line) for line in manager.lines if line.startswith("{")]
    messages = [record["msg"] for record in records]
    assert f"hub: embedded broker on tcp://127.0.0.1:{port} (development only)" in messages
    rule = next(record for record in records if record["msg"].startswith("rules[0]:"))
    assert rule["msg"] == "rules[0]: a/+ (qos 1) → hi → b (qos 1) (clientid c2f)"
    assert (rule["rule"], rule["function"], rule["clientid"]) == (0, "hi", "c2f")
    assert any(message.startswith("rules[1]: schedule every") and "→ hi → c" in message for message in messages)
    function = next(record for record in records if record["msg"].startswith("functions: hi"))
    assert function["msg"] == "functions: hi (python): 1 warm (min 1, max 2)" and function["function"] == "hi"
    assert messages.index("edgefn ready") > messages.index(function["msg"])
