"""A Python runtime started before the config loads, for the first Python instance to adopt.

A Python runtime spends most of its start importing asyncio, grpc and
protobuf; so does the manager, before it knows which functions to start.
``edgefn run`` therefore starts one *standby* runtime first thing (:func:`start`):
it imports the serving stack on the other core while the manager loads the
config, then waits on stdin for a function. The first Python instance whose
start would be the same as the standby's takes it over (:func:`take`): the
manager writes the instance's working folder and environment as one JSON line,
and from there on the process is that instance, handshake included.

"The same" means: the Python runtime's command line, no ``instance.user``,
and the same environment where a process reads it at start (``PYTHON*``,
``LD_*``, the locale, ``HOME``). Anything else starts as before. An unused
standby is killed (:func:`release`): at once when no function can use it, else a
few seconds after the manager is ready, so a ``min: 0`` function's first
message still finds it, and an idle manager keeps no process it did not ask for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from edgefn.manager.launch import PYTHON_ARGV, PYTHON_FLAGS, base_env

if TYPE_CHECKING:
    import asyncio

# How long an unused standby outlives "edgefn ready": time for a min-0 function's first message.
KEEP = 10.0
# What a pipe takes before its reader reads (Linux's default capacity is 64 KiB).
PIPE_ROOM = 60 * 1024
# Environment read while a process starts (interpreter, loader, libc locale, user site):
# an instance whose values differ cannot be an already-started process.
_STARTUP_KEYS = ("PYTHON", "LD_", "LC_", "LANG", "HOME", "MALLOC_", "GLIBC_")


class Standby:
    """A started standby runtime: its pid, a pidfd for its exit, and our ends of its pipes.

    A plain class, not a dataclass: this module is imported before anything else
    (dataclasses and inspect would cost the standby's start 20 ms).
    """

    __slots__ = ("pid", "pidfd", "stdin", "stdout", "stderr", "env")

    def __init__(self, pid: int, pidfd: int, stdin: int, stdout: int, stderr: int, env: Mapping[str, str]) -> None:
        self.pid, self.pidfd, self.env = pid, pidfd, env
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr

    def fits(self, argv: Sequence[str], env: Mapping[str, str], spawn_options: Mapping[str, object]) -> bool:
        """Whether an instance launched as ``argv`` with ``env`` would start exactly as this process did."""
        return tuple(argv) == PYTHON_ARGV and not spawn_options and _startup(env) == _startup(self.env)

    def assign(self, line: bytes) -> None:
        """Tell the standby which instance it is: the line from :func:`_assignment` on its stdin
        (which stays open). It fits in the pipe, so the write does not wait for the reader."""
        while line:
            line = line[os.write(self.stdin, line):]

    def kill(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Kill it, close our ends of its pipes and reap it: at once, or on ``loop`` once its
        pidfd says it is gone (the kernel may take a moment to tear down a process)."""
        import signal

        os.kill(self.pid, signal.SIGKILL)  # not reaped yet: the pid is still this child's
        for fd in (self.stdin, self.stdout, self.stderr):
            os.close(fd)
        if loop is None:
            self._reap()
        else:
            loop.add_reader(self.pidfd, self._reap, loop)

    def _reap(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None:
            loop.remove_reader(self.pidfd)
        os.waitpid(self.pid, 0)
        os.close(self.pidfd)


_current: Standby | None = None
_timer: asyncio.TimerHandle | None = None  # a delayed release


def start() -> None:
    """Start the standby runtime (once; nothing where pidfds or posix_spawn are missing)."""
    global _current
    if _current is not None or not hasattr(os, "pidfd_open") or not hasattr(os, "posix_spawn"):
        return
    env = {**base_env(os.environ), **PYTHON_FLAGS, "EDGEFN_STANDBY": "1"}
    pipes = [os.pipe() for _ in range(3)]  # non-inheritable: only the dup2'd ends reach the child
    ours = (pipes[0][1], pipes[1][0], pipes[2][0])
    theirs = (pipes[0][0], pipes[1][1], pipes[2][1])
    try:
        pid = os.posix_spawn(
            PYTHON_ARGV[0], PYTHON_ARGV, env,
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, number) for number, fd in enumerate(theirs)],
            setsid=True,  # its own session, as every instance: a terminal's Ctrl-C reaches only the manager
        )
    except OSError:
        pid = None
    finally:
        for fd in theirs:  # the child's ends: its own copies are what it uses
            os.close(fd)
    pidfd = _pidfd(pid)
    if pid is None or pidfd is None:
        for fd in ours:
            os.close(fd)
        return
    _current = Standby(pid, pidfd, *ours, env=env)


def _pidfd(pid: int | None) -> int | None:
    """A pidfd for ``pid``; None (and the process killed and reaped) on a kernel before 5.3,
    where its exit could not be watched, so there is no standby."""
    if pid is None:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        import signal

        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None


def take(argv: Sequence[str], cwd: str | None, env: Mapping[str, str],
         spawn_options: Mapping[str, object]) -> Standby | None:
    """The standby, assigned to the instance described, if it fits it (then it is no longer standing by)."""
    global _current
    standby = _current
    if standby is None or not standby.fits(argv, env, spawn_options) or (cwd is not None and not os.path.isdir(cwd)):
        return None
    line = _assignment(cwd, env)
    if len(line) > PIPE_ROOM:  # a huge environment: writing it would wait on the loop for the reader
        return None
    _current = None
    _cancel_timer()
    standby.assign(line)
    return standby


def _assignment(cwd: str | None, env: Mapping[str, str]) -> bytes:
    import orjson

    return orjson.dumps({"cwd": cwd, "env": dict(env)}) + b"\n"


def release(after: float = 0.0) -> None:
    """Kill an unused standby now, or ``after`` seconds from now (on the running loop)."""
    global _timer
    _cancel_timer()
    if _current is None:
        return
    if after <= 0:
        _kill()
        return
    import asyncio

    loop = asyncio.get_running_loop()
    _timer = loop.call_later(after, _kill, loop)


def _kill(loop: asyncio.AbstractEventLoop | None = None) -> None:
    global _current, _timer
    standby, _current, _timer = _current, None, None
    if standby is not None:
        standby.kill(loop)


def _cancel_timer() -> None:
    global _timer
    if _timer is not None:
        _timer.cancel()
        _timer = None


def _startup(env: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith(_STARTUP_KEYS)}
