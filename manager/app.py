"""The manager's lifecycle: start, ready, serve until told to stop, drain, stop (SPEC §2).

Start order: function runners (``edgefn run``: every ``min`` instance started
first, as the start-up check, see ``preflight.py``) → the metrics endpoint (if
configured) → embedded broker (if no hub.address) → gRPC server (if
configured) → one hub connection per clientid, each subscribed to its rules →
the scheduler (scheduled rules) → every ``min`` instance warm → ``edgefn
ready`` (with the start-up summary, and ``READY=1`` to systemd). Stop order is
the reverse, with a deadline: stop the scheduler and taking messages, let
deliveries and fires in flight finish within ``shutdown.timeout``, cancel what
is left (logged), disconnect, stop the runtimes.

``reconfigure`` applies a new, validated config to the running manager (hot
reload): only what changed is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from edgefn.manager import logs
from edgefn.manager.broker import EmbeddedBroker
from edgefn.manager.config import Config, FunctionConfig, RuleConfig
from edgefn.manager.leftovers import private_dir
from edgefn.manager.metrics import Metrics
from edgefn.manager.notify import Notifier
from edgefn.manager.preflight import first_start
from edgefn.manager.runners import ReloadError, RunnerTable
from edgefn.manager.scheduler import Scheduler, scheduled_call
from edgefn.manager.stopping import unless_stopped
from edgefn.manager.summary import log_summary
from edgefn.manager.topics import Subscription, subscriptions

if TYPE_CHECKING:  # grpc health and reflection load only for a config with a server
    from edgefn.manager.health import HealthServer
    from edgefn.manager.hub import Hub
    from edgefn.manager.router import Route, Router
    from edgefn.manager.server import FunctionServer

__all__ = ["Manager", "ReloadError"]

log = logging.getLogger("edgefn.manager")

# How often start-up looks whether every function's min instances are warm.
WARM_POLL = 0.05
# What connects the hub (aiomqtt, paho, the router): imported in a thread while
# the first instances boot, so that start-up takes the longer of the two, not their sum.
CONNECTING = ("edgefn.manager.hub", "edgefn.manager.router")


def _import_connecting() -> None:
    for name in CONNECTING:
        importlib.import_module(name)


def _by_clientid(config: Config) -> dict[str, list[RuleConfig]]:
    groups: dict[str, list[RuleConfig]] = defaultdict(list)
    for rule in config.rules:
        groups[rule.clientid or config.hub.clientid].append(rule)
    return groups


class Manager:
    """Everything ``edgefn run`` runs, for one config.

    ``prepare`` maps a function's config to the one its runner uses (``edgefn
    dev`` points codedir at a snapshot of the last good code). ``check``
    (``edgefn run``): start nothing else unless every handler loads; else
    ``run`` raises :class:`~edgefn.manager.preflight.StartRefused`.
    """

    def __init__(self, config: Config, *, prepare: Callable[[FunctionConfig], FunctionConfig] | None = None,
                 check: bool = False) -> None:
        self.config = config
        self._check = check
        self.metrics = Metrics()
        self._socket_dir = private_dir()  # 0700: instances' sockets are private
        self.runners = RunnerTable(socket_dir=self._socket_dir, metrics=self.metrics,
                                   grace=config.shutdown.timeout, prepare=prepare)
        self.runners.on_removed = self._refresh_server
        self.connections: dict[str, tuple[Hub, Router]] = {}
        self.server: FunctionServer | None = None
        self._broker: EmbeddedBroker | None = None
        self.scheduler = Scheduler(self._fire)
        self._scheduling: asyncio.Task[None] | None = None
        self.health: HealthServer | None = None
        self.notifier = Notifier()
        self.state = "starting"  # → ready → draining

    @property
    def ready(self) -> bool:
        """Ready to take messages: started, not draining, every hub connection up (``/readyz``)."""
        return self.state == "ready" and all(hub.connected for hub, _ in self.connections.values())

    async def run(self, stop: asyncio.Event, started: Callable[[], None] | None = None) -> None:
        """Run until ``stop`` is set, then shut down gracefully.

        ``started`` is called once everything started, before waiting for the
        ``min`` instances to be warm (``edgefn dev`` watches for a fix from then on).
        """
        async with contextlib.AsyncExitStack() as stack:
            await self._own(stack, self.notifier.keep_alive(), "watchdog")
            # A signal while starting (a hub that never answers, slow instances) stops it: the
            # stack undoes what did start.
            if await unless_stopped(self._start(stack), stop):
                if started is not None:
                    started()
                if await unless_stopped(self._warm(), stop):
                    await self._own(stack, self.metrics.log_status(lambda: self.config.logger.status), "status")
                    await self._ready()
                    await stop.wait()
            self.state = "draining"
            self.notifier.send("STOPPING=1")
            await self._refresh_server()
            log.info("stopping: draining work in flight (up to %gs)", self.config.shutdown.timeout)
            await self._stop_scheduler()  # no new fire while the rest drains
            await self._drain_all(self.config.shutdown.timeout)

    async def _ready(self) -> None:
        log_summary(self.config, self.runners)
        self.state = "ready"
        log.info("edgefn ready")
        self.notifier.send("READY=1\nSTATUS=ready")
        await self._refresh_server()  # the gRPC health service's watchers see SERVING now

    async def _own(self, stack: contextlib.AsyncExitStack, work: Coroutine[object, object, None], name: str) -> None:
        """Run ``work`` as a task named ``name`` that the stack cancels and awaits."""
        task = asyncio.create_task(work, name=name)

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        stack.push_async_callback(cancel)

    async def _warm(self) -> None:
        """Wait until every function has its ``min`` instances up (a start failure retries with backoff)."""
        noted = False
        while cold := [name for name, runner in self.runners.items() if not getattr(runner, "warm", True)]:
            if not noted:
                noted = True
                log.info("waiting for the min instances of %s before ready", ", ".join(sorted(cold)))
            await asyncio.sleep(WARM_POLL)

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        stack.push_async_callback(self._stop_health)
        stack.callback(shutil.rmtree, self._socket_dir, True)
        stack.push_async_callback(self._stop_broker)
        stack.push_async_callback(self.runners.stop)
        if self._check:  # the min instances start first: their start is the handlers' check
            await first_start(self.config, self.runners, meanwhile=_import_connecting)
        else:
            await self.runners.build_all(self.config.functions)  # a function that cannot run here stops us now
        await self._start_health()
        await self._start_broker()
        stack.push_async_callback(self._stop_server)  # before the runners: no call lands on a stopping pool
        stack.push_async_callback(self._disconnect_all)
        # Instances warm up while the server binds and the hub connects: start-up takes the
        # longest of the three, not their sum.
        async with asyncio.TaskGroup() as group:
            group.create_task(self.runners.start(), name="start:runners")
            group.create_task(self._start_server(), name="start:server")
            group.create_task(self._connect_all(), name="start:hub")
        stack.push_async_callback(self._stop_scheduler)
        self._start_scheduler()

    # -- broker and server -----------------------------------------------------

    async def _start_health(self) -> None:
        if self.config.metrics is not None:
            from edgefn.manager.health import HealthServer  # prometheus_client: only with a metrics section

            self.health = HealthServer(self.config.metrics, self)
            await self.health.start()

    async def _stop_health(self) -> None:
        if self.health is not None:
            await self.health.stop()
            self.health = None

    async def _start_broker(self) -> None:
        if self.config.hub.embedded:
            self._broker = EmbeddedBroker(self.config.hub.port)
            await self._broker.start()
            log.info("embedded broker listening on 127.0.0.1:%d (development only)", self.config.hub.port)

    async def _stop_broker(self) -> None:
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None

    async def _start_server(self) -> None:
        if self.config.server is not None:
            from edgefn.manager.server import FunctionServer

            self.server = FunctionServer(self.config.server, self.runners, ready=lambda: self.ready)
            await self.server.start()

    async def _stop_server(self) -> None:
        if self.server is not None:
            await self.server.stop(self.config.shutdown.timeout)
            self.server = None

    async def _refresh_server(self) -> None:
        if self.server is not None:
            await self.server.refresh()

    # -- connections -------------------------------------------------------------

    def _routes(self, rules: list[RuleConfig]) -> list[Route]:
        return [self._route(rule) for rule in rules]

    def _route(self, rule: RuleConfig) -> Route:
        from edgefn.manager.router import Route

        clientid = rule.clientid or self.config.hub.clientid
        return Route(rule, self.runners, self.metrics.function(rule.function),
                     self.metrics.rule(rule.index, rule.function, clientid))

    async def _connect_all(self) -> None:
        for clientid, rules in _by_clientid(self.config).items():
            await self._open(clientid, rules)
        await asyncio.gather(*(hub.wait_ready() for hub, _ in self.connections.values()))

    async def _open(self, clientid: str, rules: list[RuleConfig]) -> None:
        from edgefn.manager.hub import Hub
        from edgefn.manager.router import Router

        router = Router(self._routes(rules), name=clientid, message_max=self.config.hub.message_max)
        hub = Hub(self.config.hub, clientid, router.on_message, name=clientid)
        router.hub = hub
        await hub.__aenter__()
        self.connections[clientid] = (hub, router)
        merged = _subscriptions(rules)
        _log_merges(clientid, merged)
        router.covers = _broader(merged)
        for subscription in merged:
            await hub.subscribe(subscription.filter, subscription.qos)

    # -- schedules ---------------------------------------------------------------

    def _start_scheduler(self) -> None:
        self.scheduler.update(self.config.rules)
        self._scheduling = asyncio.create_task(self.scheduler.run(), name="scheduler")

    async def _stop_scheduler(self) -> None:
        if self._scheduling is not None:
            self._scheduling.cancel()
            await asyncio.gather(self._scheduling, return_exceptions=True)
            self._scheduling = None

    def _fire(self, rule: RuleConfig, nominal: datetime, late: bool) -> None:
        """A scheduled rule is due: its call goes through the router of the rule's connection."""
        stats = self.metrics.function(rule.function)
        stats.fired(rule.index, late)
        if late:
            log.warning("rules[%d]: the fire due at %s ran late", rule.index, nominal.isoformat())
        connection = self.connections.get(rule.clientid or self.config.hub.clientid)
        if connection is None:  # a hub change is reconnecting everything right now
            log.warning("rules[%d]: no connection to publish on; the fire at %s is skipped",
                        rule.index, nominal.isoformat())
            return
        connection[1].fire(self._route(rule), scheduled_call(rule, nominal))

    async def _drain_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for hub, router in self.connections.values():
            router.close()
            hub.stop_delivering()
        for clientid, (_, router) in self.connections.items():
            cancelled = await router.drain(max(0.0, deadline - time.monotonic()))
            if cancelled:
                log.warning("clientid %s: %d deliveries did not finish within shutdown.timeout; "
                            "they stay unacknowledged and will be redelivered", clientid, cancelled,
                            extra={"clientid": clientid})

    async def _disconnect_all(self) -> None:
        for hub, _ in self.connections.values():
            with contextlib.suppress(Exception):
                await hub.__aexit__(None, None, None)
        self.connections.clear()

    async def _close(self, clientid: str, topics: Iterable[str]) -> None:
        """Retire one connection: finish its deliveries, drop its subscriptions, disconnect."""
        from edgefn.manager.hub import HubError

        hub, router = self.connections.pop(clientid)
        router.close()
        hub.stop_delivering()
        await router.drain(self.config.shutdown.timeout)
        for topic in topics:  # a persistent session would otherwise keep queuing for it
            with contextlib.suppress(HubError):
                await hub.unsubscribe(topic)
        await hub.__aexit__(None, None, None)

    # -- hot reload --------------------------------------------------------------

    async def reconfigure(self, new: Config, code_changed: Iterable[str] = ()) -> None:
        """Apply ``new`` (already validated by load_config) to the running manager.

        Every function that is new, changed, or whose code changed gets a fresh
        runner, loaded and checked before anything is touched: on a problem
        ``ReloadError`` is raised and the old config keeps running. Otherwise
        rules are rewired (untouched rules keep running), replaced runners
        finish their calls in flight and stop, and a hub change reconnects all.
        """
        old = self.config
        before = {function.name: function for function in old.functions}
        after = {function.name: function for function in new.functions}
        restart = {name for name, function in after.items() if before.get(name) != function} | (
            set(code_changed) & set(after))
        fresh = await self.runners.fresh([after[name] for name in sorted(restart)])
        hub_changed = new.hub != old.hub
        if hub_changed:
            await self._drain_all(old.shutdown.timeout)
            await self._unsubscribe_stale(old, new)
            await self._disconnect_all()
        # Only the old config's functions: a runner of a removed function may still be retiring.
        self.runners.swap(fresh, retire={name for name in restart | set(before) - set(after) if name in before})
        self.runners.grace = new.shutdown.timeout
        self.config = new
        if hub_changed:
            if new.hub.embedded != old.hub.embedded or new.hub.port != old.hub.port:
                await self._stop_broker()
                await self._start_broker()
            await self._connect_all()
        else:
            await self._rewire(old, new)
        self.scheduler.update(new.rules)
        await self._reconfigure_server(old, new)
        if new.metrics != old.metrics:
            await self._stop_health()
            await self._start_health()
        if new.logger != old.logger:
            logs.configure(new.logger)
        log.info("reloaded %s: %s", new.path.name, _summary(old, new, restart, hub_changed))

    async def _rewire(self, old: Config, new: Config) -> None:
        """Move from ``old``'s rules to ``new``'s without touching unchanged connections."""
        before, after = _by_clientid(old), _by_clientid(new)
        for clientid, rules in after.items():
            if clientid not in self.connections:
                await self._open(clientid, rules)
                await self.connections[clientid][0].wait_ready()
                continue
            if before.get(clientid) == rules:
                continue
            hub, router = self.connections[clientid]
            merged = _subscriptions(rules)
            _log_merges(clientid, merged)
            was, now = _subscribed(before.get(clientid, [])), _qos(merged)
            router.replace_routes(self._routes(rules))
            # New subscriptions before old ones go: a kept rule whose filter moves from one covering
            # subscription to another (a/# to a/b) misses nothing. Until the old ones are gone, what
            # they still bring for a removed rule is expected, and acknowledged without a warning.
            router.covers = (*_broader(merged), *(was.keys() - now.keys()))
            for topic, qos in now.items():
                if was.get(topic) != qos:
                    await hub.subscribe(topic, qos)
            for topic in was.keys() - now.keys():
                await hub.unsubscribe(topic)
            router.covers = _broader(merged)
        for clientid in before.keys() - after.keys():
            await self._close(clientid, _subscribed(before[clientid]))

    async def _unsubscribe_stale(self, old: Config, new: Config) -> None:
        """Before a hub change disconnects every rule: drop the subscriptions ``new`` no longer has.

        A persistent session (cleansession false) would otherwise keep them at
        the broker, which queues messages for them. When the session outlives the
        reconnection (the same broker, persistent before and after), ``new``'s
        subscriptions are made first: the broker queues for them while the
        connection is down, even for a rule whose filter moves from one covering
        subscription to another.
        """
        from edgefn.manager.hub import HubError

        kept = _session_kept(old, new)
        after = _by_clientid(new)
        for clientid, rules in _by_clientid(old).items():
            if clientid not in self.connections:
                continue
            hub = self.connections[clientid][0]
            had, wanted = _subscribed(rules), _subscribed(after.get(clientid, []))
            for topic, qos in wanted.items() if kept else ():
                if had.get(topic) != qos:
                    with contextlib.suppress(HubError):
                        await hub.subscribe(topic, qos)
            for topic in had.keys() - wanted.keys():
                with contextlib.suppress(HubError):
                    await hub.unsubscribe(topic)

    async def _reconfigure_server(self, old: Config, new: Config) -> None:
        if new.server != old.server:
            await self._stop_server()
            await self._start_server()
        elif self.server is not None:
            await self.server.refresh()


def _session_kept(old: Config, new: Config) -> bool:
    """Whether a connection's broker session outlives a reconnection from ``old``'s hub to ``new``'s."""
    before, after = old.hub, new.hub
    return (not before.embedded and not after.embedded and not before.cleansession and not after.cleansession
            and (before.scheme, before.host, before.port) == (after.scheme, after.host, after.port))


def _subscriptions(rules: Iterable[RuleConfig]) -> list[Subscription]:
    """What one connection subscribes to for ``rules`` (overlapping filters as one)."""
    filters: dict[str, int] = {}
    for rule in rules:
        if rule.subscribe is not None:  # a scheduled rule only publishes on the connection
            topic = rule.subscribe.topic
            filters[topic] = max(filters.get(topic, 0), rule.subscribe.qos)
    return subscriptions(filters)


def _qos(merged: Iterable[Subscription]) -> dict[str, int]:
    return {subscription.filter: subscription.qos for subscription in merged}


def _subscribed(rules: Iterable[RuleConfig]) -> dict[str, int]:
    """The filters one connection subscribes to for ``rules``, with their QoS."""
    return _qos(_subscriptions(rules))


def _broader(merged: Iterable[Subscription]) -> tuple[str, ...]:
    """The subscriptions that bring topics no rule's own filter matches (for the router: no warning)."""
    return tuple(subscription.filter for subscription in merged if subscription.broader)


def _log_merges(clientid: str, merged: Iterable[Subscription]) -> None:
    """Say which rules' filters share one subscription."""
    for subscription in merged:
        if len(subscription.covers) > 1:
            log.info("clientid %s: the filters %s overlap: subscribed as one, %r, so that an input reaches "
                     "this connection once; each rule still takes only what its own filter matches", clientid,
                     ", ".join(map(repr, subscription.covers)), subscription.filter, extra={"clientid": clientid})


def _summary(old: Config, new: Config, restarted: set[str], hub_changed: bool) -> str:
    added = len(set(new.rules) - set(old.rules))
    removed = len(set(old.rules) - set(new.rules))
    parts = [f"rules +{added} -{removed}"]
    if restarted:
        parts.append("functions restarted: " + ", ".join(sorted(restarted)))
    if hub_changed:
        parts.append("hub reconnected")
    return "; ".join(parts)
