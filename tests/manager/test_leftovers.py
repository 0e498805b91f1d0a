"""Folders left by a killed manager are removed at the next start, only when their owner is gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgefn.manager import leftovers
from support.broker import free_port
from support.manager import ManagerProcess, python_function, write_config

pytestmark = pytest.mark.timeout(60)


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def folder(root: Path, name: str, marker: str | None) -> Path:
    path = root / name
    path.mkdir()
    (path / "x.sock").write_text("")
    if marker is not None:
        (path / leftovers.MARKER).write_text(marker)
    return path


def test_only_folders_of_gone_owners_are_swept(tmp_path: Path) -> None:
    me = leftovers._identity(os.getpid())
    assert me is not None
    gone = folder(tmp_path, "edgefn-gone", f"{dead_pid()} 12345")
    reused = folder(tmp_path, "edgefn-reused", f"{os.getpid()} 1")  # our pid, another start time: a reused pid
    alive = folder(tmp_path, "edgefn-alive", me)
    unmarked = folder(tmp_path, "edgefn-unmarked", None)  # maybe a manager between mkdtemp and its marker
    garbled = folder(tmp_path, "edgefn-garbled", "not a pid")
    other = folder(tmp_path, "other-gone", f"{dead_pid()} 1")
    assert sorted(leftovers.sweep(tmp_path)) == sorted([gone, reused])
    assert not gone.exists() and not reused.exists()
    assert alive.exists() and unmarked.exists() and garbled.exists() and other.exists()


def test_a_private_dir_is_0700_and_marked_as_ours() -> None:
    made = leftovers.private_dir("edgefn-test-")
    try:
        assert made.stat().st_mode & 0o777 == 0o700
        assert (made / leftovers.MARKER).read_text() == leftovers._identity(os.getpid())
        assert made not in leftovers.sweep()
    finally:
        shutil.rmtree(made)


def test_a_sigkilled_managers_folder_is_removed_when_the_next_one_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"hub": {"embedded": {"port": free_port()}},
                                     "functions": [python_function("hi", "e2e", "index.echo")]})
    env = {"TMPDIR": str(tmp_path)}
    with ManagerProcess(config, env=env) as first:
        first.wait_ready()
        left = [p for p in tmp_path.glob("edgefn-*") if (p / leftovers.MARKER).exists()]
        first.kill()
    assert left and all(p.exists() for p in left)
    with ManagerProcess(config, env=env) as second:
        second.wait_ready()
        assert not any(p.exists() for p in left)
        assert "removed 1 folder(s) left by a manager that was killed" in second.log
        assert second.stop() == 0
    assert not list(tmp_path.glob("edgefn-*"))
