"""Start-up failures of ``run`` and ``dev``: one clear line, exit 1; one signal stops it in every state."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.broker import free_port
from support.manager import ManagerProcess, python_function, write_config

pytestmark = pytest.mark.timeout(60)

SQL_TYPO = {"name": "f", "runtime": "sql", "handler": "select from where"}


def edgefn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgefn", *args], capture_output=True, text=True,
                          timeout=50, stdin=subprocess.DEVNULL)


def assert_clean_failure(done: subprocess.CompletedProcess[str], *names: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr, done.stderr
    for name in names:
        assert name in done.stderr, done.stderr


@pytest.mark.parametrize("command", ["run", "dev", "check"])
def test_an_invalid_sql_statement_is_one_problem_naming_its_key(tmp_path: Path, command: str) -> None:
    path = write_config(tmp_path, {"hub": {"embedded": {"port": free_port()}}, "functions": [SQL_TYPO]})
    done = edgefn(command, str(path))
    assert_clean_failure(done, "functions: f:", "syntax error")
    assert "edgefn ready" not in done.stderr


@pytest.mark.parametrize("command", ["run", "dev"])
def test_a_taken_embedded_port_is_one_line_naming_hub_embedded_port(tmp_path: Path, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, {"hub": {"embedded": {"port": port}},
                                       "functions": [python_function("hi", "e2e", "index.echo")]})
        done = edgefn(command, str(path))
    assert_clean_failure(done, "hub.embedded.port", str(port))
    assert len([line for line in done.stderr.splitlines() if "ERROR" in line]) == 1


@pytest.mark.parametrize("command", ["check", "run"])
def test_an_unwritable_logger_path_is_caught_before_running(tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where run would need a folder: unwritable even for root
    path = write_config(tmp_path, {"hub": {"embedded": {"port": free_port()}},
                                   "functions": [python_function("hi", "e2e", "index.echo")],
                                   "logger": {"path": "a-file/edgefn.log"}})
    assert_clean_failure(edgefn(command, str(path)), "logger.path", "cannot write a log file")


def test_deeply_nested_yaml_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.yml"
    path.write_text("functions: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_clean_failure(edgefn("check", str(path)), "nested deeper than")


def test_a_huge_config_file_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    path.write_text("functions: []\nx: '" + "a" * (5 * 1024 * 1024) + "'\n")
    started = time.monotonic()
    assert_clean_failure(edgefn("check", str(path)), "larger than")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_one_signal_stops_a_manager_that_never_reached_its_hub(tmp_path: Path, signum: int) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    path = write_config(tmp_path, {
        "hub": {"address": f"tcp://127.0.0.1:{port}"},
        "rules": [{"subscribe": {"topic": "t", "qos": 1}, "function": {"name": "hi"}, "publish": {"topic": "o"}}],
        "functions": [python_function("hi", "e2e", "index.echo", instance={"min": 1})],  # a warm instance too
    })
    with ManagerProcess(path) as manager:
        manager.wait_for_log("reconnecting in", timeout=30)
        manager.process.send_signal(signum)
        try:
            code = manager.process.wait(10)  # one signal is enough, promptly
        except subprocess.TimeoutExpired:
            raise AssertionError(manager.log) from None
        manager._reader.join(5)
    assert code == 0, manager.log
    assert "stopped" in manager.log and "Traceback" not in manager.log


@pytest.mark.parametrize("command", ["check", "run", "dev"])
@pytest.mark.parametrize(("section", "key"), [("hub", "hub.ca"), ("server", "server.cert")])
def test_tls_files_that_are_not_pem_fail_in_one_line_naming_the_key(tmp_path: Path, section: str, key: str,
                                                                     command: str) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    document: dict = {"functions": [{"name": "f", "runtime": "sql", "handler": "select *"}]}
    if section == "hub":  # a rule, so that there is a connection to make
        document["hub"] = {"address": "ssl://127.0.0.1:1", "ca": "junk.pem"}
        document["rules"] = [{"subscribe": {"topic": "t"}, "function": {"name": "f"}, "publish": {"topic": "o"}}]
    else:
        document["hub"] = {"embedded": {"port": free_port()}}
        document["server"] = {"address": "127.0.0.1:0", "cert": "junk.pem", "key": "junk.pem"}
    done = edgefn(command, str(write_config(tmp_path, document)))
    assert_clean_failure(done, key, "PEM")
    assert "edgefn ready" not in done.stderr
