"""``edgefn init``: a project that checks, answers, and never overwrites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest


def edgefn(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgefn", *args], capture_output=True, text=True,
                          timeout=50, stdin=subprocess.DEVNULL, cwd=cwd)


@pytest.mark.parametrize("runtime", ["python", "node", "sql"])
def test_an_initialized_project_checks_and_answers(tmp_path: Path, runtime: str) -> None:
    project = tmp_path / "hello"
    done = edgefn("init", str(project), "--runtime", runtime)
    assert done.returncode == 0, done.stderr
    config = project / "edgefn.yml"
    checked = edgefn("check", str(config))
    assert checked.returncode == 0, checked.stderr
    answered = edgefn("call", "hello", "--config", str(config), "--data", '{"name": "edge"}')
    assert (answered.returncode, orjson.loads(answered.stdout)) == (0, {"greeting": "hello, edge"}), answered.stderr
    assert answered.stderr == ""


def test_the_readme_has_the_three_commands(tmp_path: Path) -> None:
    assert edgefn("init", str(tmp_path)).returncode == 0
    readme = (tmp_path / "README.md").read_text()
    assert "edgefn run edgefn.yml" in readme
    assert "mosquitto_pub -p 1883 -t hello/in" in readme and "mosquitto_sub -p 1883 -t hello/out" in readme
    assert "embedded" in (tmp_path / "edgefn.yml").read_text()


def test_init_without_a_folder_writes_into_the_current_one(tmp_path: Path) -> None:
    done = edgefn("init", "--runtime", "node", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "functions" / "hello" / "index.js").is_file()


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("mine\n")
    done = edgefn("init", str(tmp_path))
    assert done.returncode == 1
    assert "README.md" in done.stderr and "nothing was written" in done.stderr
    assert (tmp_path / "README.md").read_text() == "mine\n"
    assert not (tmp_path / "edgefn.yml").exists()
