"""Running the manager as a process: logging, signals, exit status.

The first SIGINT/SIGTERM starts a graceful shutdown (drain within
``shutdown.timeout``); a second one cancels everything at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from edgefn.manager import logs
from edgefn.manager.config import Config

log = logging.getLogger("edgefn.manager")


def serve(config: Config) -> int:
    """Run the manager for ``config`` until a signal; return the exit status."""
    logs.configure(config.logger)
    try:
        return asyncio.run(_main(config))
    except KeyboardInterrupt:
        return 130


async def _main(config: Config) -> int:
    from edgefn.manager.app import Manager
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
        await Manager(config).run(stop)
    except (BrokerError, ServerError) as exc:
        log.error("%s", exc)
        return 1
    except asyncio.CancelledError:
        return 1
    log.info("stopped")
    return 0
