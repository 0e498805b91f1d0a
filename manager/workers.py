"""``workers: N``: one supervisor process running N managers that share the rules' inputs.

One manager is one asyncio event loop, so one core's worth of routing at most.
With ``workers`` above 1, ``edgefn run`` becomes this supervisor: it starts N
worker processes (``python -m edgefn.manager.worker``, each a whole manager on
its share of the config, see :mod:`edgefn.manager.worker`) and

- says ``edgefn ready`` (and ``READY=1`` to systemd) once every worker is
  ready; each worker reports to it over its own ``NOTIFY_SOCKET``, the
  systemd protocol, so a worker runs exactly the manager ``edgefn run`` runs;
- forwards SIGTERM and SIGINT to every worker, which drains as ``edgefn run``
  does (a second signal, forwarded too, stops them at once), kills a worker
  still running ``shutdown.timeout`` + :data:`KILL_MARGIN` later, and exits 0
  when every worker stopped cleanly, else 1;
- restarts a worker that exits on its own once everything was ready, after a
  pause that doubles from :data:`RESTART_FIRST` to :data:`RESTART_MAX` while it
  fails before it is ready again: its persistent session's queued inputs wait
  for that client id. A worker that fails during start-up stops them all
  (exit 1), like ``edgefn run`` with a config that cannot start;
- never leaves a worker behind: each worker's stdin is a pipe from here, and
  a worker drains and exits when it reaches EOF (the supervisor is gone, even
  killed with SIGKILL).

Workers run in their own sessions, so a terminal's Ctrl-C reaches only the
supervisor, which forwards it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from edgefn.manager.config import Config
from edgefn.manager.leftovers import private_dir
from edgefn.manager.notify import Notifier
from edgefn.manager.stopping import unless_stopped
from edgefn.manager.worker import WorkerSpec, worker_clientid

__all__ = ["KILL_MARGIN", "RESTART_FIRST", "RESTART_MAX", "Supervisor", "supervise"]

log = logging.getLogger("edgefn.workers")

RESTART_FIRST = 0.5  # seconds before the first restart of a worker that exited
RESTART_MAX = 30.0
KILL_MARGIN = 5.0  # past shutdown.timeout, a worker still running after a stop is killed


def supervise(config: Config, level: str | None = None) -> int:
    """Run ``config.workers`` workers until a signal; return the exit status (logging is configured)."""
    try:
        return asyncio.run(Supervisor(config, level).run())
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the boundary: one line for the operator (the workers drain on their own)
        log.critical("the workers' supervisor failed unexpectedly (a bug): %s: %s", type(exc).__name__, exc)
        log.debug("where it failed", exc_info=exc)
        return 1


class _Slot:
    """Worker ``index``: its current process, and the socket it reports readiness on."""

    def __init__(self, index: int, folder: Path) -> None:
        self.index = index
        self.path = folder / f"worker-{index}.sock"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.socket.bind(str(self.path))
        self.socket.setblocking(False)
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.served = False  # the current process was ready at some point

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def on_notify(self) -> None:
        """A datagram from the worker's manager (``READY=1``, ``STOPPING=1``…)."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            lines = self.socket.recv(4096).decode(errors="replace").splitlines()
            if "READY=1" in lines:
                self.ready.set()
                self.served = True
            if "STOPPING=1" in lines:
                self.ready.clear()


class Supervisor:
    """Starts, watches, restarts and stops the workers of one config."""

    def __init__(self, config: Config, level: str | None = None) -> None:
        self.config = config
        self.level = level
        self.stop = asyncio.Event()
        self.started = False  # every worker was ready once
        self.failed = False  # a worker failed during start-up, or had to be killed
        self.notifier = Notifier()
        self._slots: list[_Slot] = []

    async def run(self) -> int:
        """Run the workers until a signal (or a start-up failure); the exit status."""
        self._catch_signals()
        folder = private_dir("edgefn-workers-")
        loop = asyncio.get_running_loop()
        try:
            self._slots = [_Slot(index, folder) for index in range(self.config.workers)]
            for slot in self._slots:
                loop.add_reader(slot.socket.fileno(), slot.on_notify)
            async with asyncio.TaskGroup() as group:
                watchdog = group.create_task(self.notifier.keep_alive(), name="watchdog")
                keepers = [group.create_task(self._keep(slot), name=f"worker:{slot.index}") for slot in self._slots]
                await self._announce()
                await self._reap(keepers)
                watchdog.cancel()
        finally:
            for slot in self._slots:
                loop.remove_reader(slot.socket.fileno())
                slot.socket.close()
            shutil.rmtree(folder, ignore_errors=True)
        if self.failed:
            return 1
        log.info("stopped")
        return 0

    def _catch_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            log.warning("second %s: the workers stop now", name)
        else:
            log.info("%s received: stopping %d workers", name, len(self._slots))
            self.stop.set()
        for slot in self._slots:
            slot.signal(signum)

    async def _announce(self) -> None:
        """``edgefn ready`` once every worker is ready (unless a stop comes first)."""
        if await unless_stopped(self._all_ready(), self.stop):
            self.started = True
            pids = ", ".join(str(slot.process.pid) for slot in self._slots if slot.process is not None)
            log.info("edgefn ready: %d workers (pids %s)", len(self._slots), pids)
            self.notifier.send(f"READY=1\nSTATUS=ready, {len(self._slots)} workers")
        await self.stop.wait()
        self.notifier.send("STOPPING=1")

    async def _all_ready(self) -> None:
        for slot in self._slots:
            await slot.ready.wait()

    async def _reap(self, keepers: list[asyncio.Task[None]]) -> None:
        """Wait for every worker to stop; kill those still running past the deadline."""
        deadline = self.config.shutdown.timeout + KILL_MARGIN
        _, late = await asyncio.wait(keepers, timeout=deadline)
        if late:
            log.error("%d workers still running %gs after the stop: killing them", len(late), deadline)
            self.failed = True
            for slot in self._slots:
                slot.signal(signal.SIGKILL)

    async def _keep(self, slot: _Slot) -> None:
        """Run worker ``slot`` until the stop; restart it (with backoff) whenever it exits on its own."""
        pause = RESTART_FIRST
        while not self.stop.is_set():
            code = await self._run_once(slot)
            if self.stop.is_set():
                # Killed by the stop signal itself: it came before the worker could catch it (no work yet).
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    self.failed = True
                return
            if not self.started:
                log.error("worker %d %s during start-up: stopping the others", slot.index, _fate(code))
                self.failed = True
                self._stop_all()
                return
            pause = RESTART_FIRST if slot.served else min(pause * 2, RESTART_MAX)
            log.warning("worker %d %s; restarting it in %gs (clientid %s)", slot.index, _fate(code), pause,
                        worker_clientid(self.config.hub.clientid, slot.index))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), pause)

    def _stop_all(self) -> None:
        if not self.stop.is_set():
            self.stop.set()
            for slot in self._slots:
                slot.signal(signal.SIGTERM)

    async def _run_once(self, slot: _Slot) -> int:
        """Start worker ``slot``, hand it its spec, wait for its exit; its status."""
        env = {key: value for key, value in os.environ.items() if key not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
        env["NOTIFY_SOCKET"] = str(slot.path)
        slot.ready.clear()
        slot.served = False
        slot.process = await asyncio.create_subprocess_exec(
            # The index in argv is for ps and top only: the worker reads its spec from stdin.
            sys.executable, "-P", "-m", "edgefn.manager.worker", "--index", str(slot.index),
            stdin=asyncio.subprocess.PIPE,  # held open: EOF tells the worker the supervisor is gone
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches only the supervisor, which forwards it
        )
        if self.stop.is_set():  # the stop came while it was being created: it missed the signal
            slot.signal(signal.SIGTERM)
        log.info("worker %d started (pid %d)", slot.index, slot.process.pid)
        assert slot.process.stdin is not None
        slot.process.stdin.write(WorkerSpec(self.config, slot.index, self.level).encode())
        with contextlib.suppress(ConnectionError):
            await slot.process.stdin.drain()
        code = await slot.process.wait()
        slot.process.stdin.close()
        return code


def _fate(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
