"""Running the manager as a process: logging, signals, exit status.

The first SIGINT/SIGTERM starts a graceful shutdown (drain within
``shutdown.timeout``), in every state, start-up included; a second one cancels
everything at once. A failure the user can fix (:class:`EdgefnError`) ends the
process with its one-line message and status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable

from edgefn.manager import logs, standby
from edgefn.manager.config import Config
from edgefn.manager.errors import EdgefnError, user_errors
from edgefn.manager.leftovers import private_dir
from edgefn.manager.preflight import StartRefused

log = logging.getLogger("edgefn.manager")


def serve(config: Config, *, dev: bool = False, level: str | None = None) -> int:
    """Run the manager for ``config`` until a signal; return the exit status.

    ``dev``: also watch the config file and every codedir, and hot-reload.
    ``level`` (``--log-level``) overrides ``logger.level``. Without ``dev``,
    a handler that does not load raises :class:`StartRefused` (what ``check``
    reports), once everything started is stopped.
    """
    try:
        logs.configure(config.logger, level=level)
    except EdgefnError as exc:
        print(f"edgefn: {exc}", file=sys.stderr)
        return 1
    if config.workers > 1:
        if dev:
            log.warning("workers: %d is for edgefn run; edgefn dev runs one manager (hot reload)", config.workers)
        else:
            from edgefn.manager.workers import supervise

            return supervise(config, level)
    try:
        return asyncio.run(_main(config, dev))
    except KeyboardInterrupt:
        return 130


async def _main(config: Config, dev: bool) -> int:
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            main_task.cancel()
            return
        log.info("%s received", signal.Signals(signum).name)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        if dev:
            await _develop(config, stop)
        else:
            from edgefn.manager.app import Manager

            await Manager(config, check=True).run(stop, started=_settled)
    except asyncio.CancelledError:
        return 1
    except StartRefused:
        raise  # the caller says it as check does
    except Exception as exc:  # the boundary: one line for the operator, never a traceback
        return _failed(exc)
    log.info("stopped")
    return 0


def _settled() -> None:
    """Everything started: what start-up allocated lives on, so no collection scans it again.

    A standby runtime nobody took yet is kept a little longer, for a ``min: 0`` function's first message.
    """
    gc.freeze()
    gc.enable()
    standby.release(after=standby.KEEP)


def _failed(exc: Exception) -> int:
    errors = user_errors(exc)
    if errors is not None:
        for error in errors:
            log.error("%s", error)
        return 1
    log.critical("edgefn failed unexpectedly (a bug; logger.level: debug shows where): %s: %s",
                 type(exc).__name__, exc)
    log.debug("where it failed", exc_info=exc)
    return 1


async def _develop(config: Config, stop: asyncio.Event) -> None:
    """``run`` plus the reloader, which starts once the manager is ready and stops with it."""
    from edgefn.manager.app import Manager
    from edgefn.manager.reload import Reloader, Snapshots

    root = private_dir("edgefn-dev-")
    try:
        snapshots = Snapshots(root)
        await asyncio.to_thread(lambda: [snapshots.take(function) for function in config.functions])
        snapshots.commit()
        manager = Manager(config, prepare=snapshots.prepare)
        reloader = Reloader(manager, snapshots)
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            watching = group.create_task(_after(ready, reloader.run), name="reloader")
            await manager.run(stop, started=ready.set)
            watching.cancel()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _after(event: asyncio.Event, work: Callable[[], Awaitable[None]]) -> None:
    await event.wait()
    await work()
