"""The manager's lifecycle: start, ready, serve until told to stop, drain, stop (SPEC §2).

Start order: embedded broker (if no hub.address) → function runners (``min``
instances warm) → one hub connection per clientid, each subscribed to its rules
→ ``edgefn ready``. Stop order is the reverse, with a deadline: stop taking
messages, let deliveries in flight finish within ``shutdown.timeout``, cancel
what is left (logged), disconnect, stop the runtimes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from edgefn.manager.broker import EmbeddedBroker
from edgefn.manager.config import Config, FunctionConfig, RuleConfig
from edgefn.manager.hub import Hub
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.manager.router import Route, Router, Runner
from edgefn.manager.server import FunctionServer
from edgefn.manager.sql import SqlRunner

log = logging.getLogger("edgefn.manager")

STATUS_INTERVAL = 30.0


class Manager:
    """Everything ``edgefn run`` runs, for one config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.runners: dict[str, Runner] = {}
        self.connections: dict[str, tuple[Hub, Router]] = {}
        self.server: FunctionServer | None = None
        self._socket_dir = Path(tempfile.mkdtemp(prefix="edgefn-"))  # 0700: instances' sockets are private

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(shutil.rmtree, self._socket_dir, True)
            if self.config.hub.embedded:
                broker = EmbeddedBroker(self.config.hub.port)
                await stack.enter_async_context(broker)
                log.info("embedded broker listening on 127.0.0.1:%d (development only)", self.config.hub.port)
            stack.push_async_callback(self._stop_runners)
            await self._start_runners(self.config.functions)
            if self.config.server is not None:
                # Pushed after the runners' stop: the server stops taking calls first.
                self.server = FunctionServer(self.config.server, self.runners)
                await self.server.start()
                stack.push_async_callback(self.server.stop, self.config.shutdown.timeout)
                log.info("gRPC server listening on %s", self.server.address)
            stack.push_async_callback(self._disconnect)
            await self._connect()
            status = asyncio.create_task(self.metrics.log_status(STATUS_INTERVAL), name="status")
            stack.callback(status.cancel)
            log.info("edgefn ready")
            await stop.wait()
            log.info("stopping: draining work in flight (up to %gs)", self.config.shutdown.timeout)
            await self._drain(self.config.shutdown.timeout)

    # -- functions ---------------------------------------------------------------

    def _runner(self, function: FunctionConfig) -> Runner:
        stats = self.metrics.function(function.name)
        if function.runtime == "sql":
            return SqlRunner(function, stats)
        return Pool(function, socket_dir=self._socket_dir, stats=stats)

    async def _start_runners(self, functions: tuple[FunctionConfig, ...]) -> None:
        for function in functions:
            self.runners[function.name] = self._runner(function)
        await asyncio.gather(*(runner.start() for runner in self.runners.values()))  # type: ignore[attr-defined]

    async def _stop_runners(self) -> None:
        grace = self.config.shutdown.timeout
        await asyncio.gather(*(r.stop(grace) for r in self.runners.values()), return_exceptions=True)  # type: ignore[attr-defined]

    # -- connections ---------------------------------------------------------------

    def _routes(self, rules: list[RuleConfig]) -> list[Route]:
        return [Route(rule, self.runners[rule.function], self.metrics.function(rule.function)) for rule in rules]

    async def _connect(self) -> None:
        groups: dict[str, list[RuleConfig]] = defaultdict(list)
        for rule in self.config.rules:
            groups[rule.clientid or self.config.hub.clientid].append(rule)
        for clientid, rules in groups.items():
            router = Router(self._routes(rules), name=clientid)
            hub = Hub(self.config.hub, clientid, router.on_message, name=clientid)
            router.hub = hub
            await hub.__aenter__()
            self.connections[clientid] = (hub, router)
            for rule in rules:
                await hub.subscribe(rule.subscribe.topic, rule.subscribe.qos)
        await asyncio.gather(*(hub.wait_ready() for hub, _ in self.connections.values()))

    async def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for hub, router in self.connections.values():
            router.close()
            hub.stop_delivering()
        for clientid, (_, router) in self.connections.items():
            cancelled = await router.drain(max(0.0, deadline - time.monotonic()))
            if cancelled:
                log.warning("%s: %d deliveries did not finish within shutdown.timeout; "
                            "they stay unacknowledged and will be redelivered", clientid, cancelled)

    async def _disconnect(self) -> None:
        for hub, _ in self.connections.values():
            with contextlib.suppress(Exception):
                await hub.__aexit__(None, None, None)
        self.connections.clear()
