"""Running the manager as a process: logging, signals, exit status.

The first SIGINT/SIGTERM starts a graceful shutdown (drain within
``shutdown.timeout``); a second one cancels everything at once.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from edgefn.manager import logs
from edgefn.manager.config import Config

log = logging.getLogger("edgefn.manager")


def serve(config: Config, *, dev: bool = False) -> int:
    """Run the manager for ``config`` until a signal; return the exit status.

    ``dev``: also watch the config file and every codedir, and hot-reload.
    """
    logs.configure(config.logger)
    try:
        return asyncio.run(_main(config, dev))
    except KeyboardInterrupt:
        return 130


async def _main(config: Config, dev: bool) -> int:
    from edgefn.manager.broker import BrokerError
    from edgefn.manager.server import ServerError

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

            await Manager(config).run(stop)
    except (BrokerError, ServerError) as exc:
        log.error("%s", exc)
        return 1
    except asyncio.CancelledError:
        return 1
    log.info("stopped")
    return 0


async def _develop(config: Config, stop: asyncio.Event) -> None:
    """``run`` plus the reloader, which starts once the manager is ready and stops with it."""
    from edgefn.manager.app import Manager
    from edgefn.manager.reload import Reloader, Snapshots

    root = Path(tempfile.mkdtemp(prefix="edgefn-dev-"))
    try:
        snapshots = Snapshots(root)
        await asyncio.to_thread(lambda: [snapshots.take(function) for function in config.functions])
        snapshots.commit()
        manager = Manager(config, prepare=snapshots.prepare)
        reloader = Reloader(manager, snapshots)
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            watching = group.create_task(_after(ready, reloader.run), name="reloader")
            await manager.run(stop, ready=ready.set)
            watching.cancel()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _after(event: asyncio.Event, work: Callable[[], Awaitable[None]]) -> None:
    await event.wait()
    await work()
