"""The standby runtime (manager/standby.py): started ahead, taken over by the first Python instance
that would start the same way, killed when nobody takes it. Real processes, real gRPC."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from edgefn.manager import standby
from edgefn.manager.config import FrozenEnv, FunctionConfig, InstanceConfig
from edgefn.manager.launch import PYTHON_ARGV, instance_env
from edgefn.manager.message import Call
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from support.manager import FUNCTIONS
from support.processes import alive, wait_gone

pytestmark = pytest.mark.timeout(30)


def function(env: dict[str, str] | None = None, **instance: object) -> FunctionConfig:
    return FunctionConfig(name=f"standby-{uuid.uuid4().hex[:6]}", runtime="python", handler="index.where",
                          codedir=FUNCTIONS / "standby", env=FrozenEnv(env or {}),
                          instance=InstanceConfig(**instance))  # type: ignore[arg-type]


async def answer(fn: FunctionConfig, sockets: Path) -> dict[str, object]:
    """Start ``fn``'s pool (its min instance), call it once, stop it; the handler's answer."""
    pool = Pool(fn, socket_dir=sockets, stats=Metrics().function(fn.name))
    await pool.start()
    try:
        call = Call(1, 1, "standby/test", b"{}", int(time.time()), fn.name, str(uuid.uuid4()))
        return orjson.loads(await pool.call(call))
    finally:
        await pool.stop(5)


@pytest.fixture
def started() -> Iterator[standby.Standby]:
    """A standby runtime of this test process; killed afterwards if nothing took it."""
    standby.start()
    assert standby._current is not None, "a standby starts on Linux"
    try:
        yield standby._current
    finally:
        standby.release()


def test_an_instance_fits_the_standby_only_if_it_would_start_the_same_way(started: standby.Standby) -> None:
    env = instance_env(function(), "unix:/tmp/x.sock")
    assert started.fits(PYTHON_ARGV, env, {})
    assert not started.fits((sys.executable, "-P", "-m", "edgefn.runtimes.sql"), env, {}), "another runtime"
    assert not started.fits(PYTHON_ARGV, env, {"user": 1000}), "instance.user starts it as another user"
    for key, value in {"PYTHONPATH": "/opt/lib", "LD_PRELOAD": "x.so", "LANG": "xx_XX.UTF-8", "HOME": "/srv"}.items():
        changed = instance_env(function({key: value}), "unix:/tmp/x.sock")
        assert not started.fits(PYTHON_ARGV, changed, {}), f"{key} is read while a process starts"
    assert started.fits(PYTHON_ARGV, instance_env(function({"GREETING": "hi", "TZ": "UTC"}), "unix:/tmp/x.sock"), {})


async def test_the_first_instance_takes_the_standby_over_with_its_folder_and_environment(
        started: standby.Standby, tmp_path: Path) -> None:
    fn = function({"GREETING": "hello", "TZ": "Asia/Tokyo"}, min=1, max=1)
    got = await answer(fn, tmp_path)
    assert got["pid"] == started.pid, "the instance is the standby process"
    assert standby._current is None, "taken: it stands by no more"
    assert got["cwd"] == str(FUNCTIONS / "standby")
    assert (got["greeting"], got["function"], got["standby"]) == ("hello", fn.name, None)
    assert got["tz"] == "JST", "TZ is applied after the start"
    await wait_gone(started.pid, 10)


async def test_an_instance_that_does_not_fit_starts_its_own_process(started: standby.Standby, tmp_path: Path) -> None:
    got = await answer(function({"PYTHONPATH": str(tmp_path)}, min=1, max=1), tmp_path)
    assert got["pid"] != started.pid
    assert standby._current is started and alive(started.pid), "still standing by"


def test_an_environment_too_big_for_the_pipe_starts_its_own_process(started: standby.Standby) -> None:
    env = instance_env(function({"BIG": "x" * standby.PIPE_ROOM}), "unix:/tmp/x.sock")
    assert started.fits(PYTHON_ARGV, env, {})
    assert standby.take(PYTHON_ARGV, None, env, {}) is None, "the write could wait for the standby's reader"
    assert standby._current is started


async def test_release_kills_an_unused_standby_and_reaps_it(started: standby.Standby) -> None:
    standby.release()
    assert standby._current is None
    assert not alive(started.pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(started.pid, os.WNOHANG)  # already reaped: no zombie left


async def test_a_delayed_release_kills_it_later(started: standby.Standby) -> None:
    standby.release(after=0.2)
    assert alive(started.pid), "not yet"
    await wait_gone(started.pid, 5)
    assert standby._current is None
    async with asyncio.timeout(5):  # reaped on the loop, once its pidfd said it was gone: no zombie
        while os.path.exists(f"/proc/{started.pid}"):
            await asyncio.sleep(0.01)


def test_a_standby_whose_manager_is_gone_exits_by_itself() -> None:
    standby.start()
    started = standby._current
    assert started is not None
    standby._current = None
    os.close(started.stdin)  # what the kernel does when the manager dies
    _, status = os.waitpid(started.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "EOF before an assignment: not needed, exit quietly"
    for fd in (started.pidfd, started.stdout, started.stderr):
        os.close(fd)


def test_without_pidfds_there_is_no_standby_and_no_process_left(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[int] = []
    spawn = os.posix_spawn

    def recording(*args: object, **kwargs: object) -> int:
        spawned.append(spawn(*args, **kwargs))  # type: ignore[arg-type]
        return spawned[-1]

    def old_kernel(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "posix_spawn", recording)
    monkeypatch.setattr(os, "pidfd_open", old_kernel)
    standby.start()
    assert standby._current is None
    assert spawned and not os.path.exists(f"/proc/{spawned[0]}"), "killed and reaped"
