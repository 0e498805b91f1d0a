"""A function's pool of runtime instances (SPEC §8).

``min`` instances start with the pool; more start on demand up to ``max``; an
instance idle longer than ``idletime`` is stopped (checked every ``evicttime``),
never below ``min``. At most ``max × concurrency`` calls are in flight; the rest
wait for a slot. Dead, hung and oversized instances are replaced; a handler
that cannot load fails calls at once while respawns back off.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from pathlib import Path

from edgefn.manager.config import FunctionConfig
from edgefn.manager.instance import Instance
from edgefn.manager.launch import instance_env, runtime_argv
from edgefn.manager.message import Call
from edgefn.manager.metrics import FunctionStats
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault

log = logging.getLogger("edgefn.pool")

BACKOFF_START = 0.5
# Resident memory is sampled this often when a function sets instance.memory.
MEMORY_CHECK_INTERVAL = 0.1


class Pool:
    """The instances of one function; ``call`` lends one for a call."""

    def __init__(self, function: FunctionConfig, *, socket_dir: Path, stats: FunctionStats) -> None:
        self.function = function
        self.runtime = function.runtime
        self.message_max = function.instance.message_max
        self.stats = stats
        self._socket_dir = socket_dir
        self._limits = function.instance
        self._instances: list[Instance] = []
        self._starting = 0
        self._slots = asyncio.Semaphore(self._limits.max * self._limits.concurrency)
        self._waiting = 0
        self._changed = asyncio.Event()
        self._numbers = itertools.count(1)
        self._load_fault: Fault | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_START
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        stats.gauges = self._gauges

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start ``min`` instances (in parallel) and the pool's housekeeping tasks."""
        await asyncio.gather(*(self._spawn_quietly() for _ in range(self._limits.min)))
        self._own(self._evict_idle(), "evict")
        self._own(self._keep_min(), "keep-min")
        if self._limits.memory:
            self._own(self._watch_memory(self._limits.memory), "memory")

    async def stop(self, grace: float) -> None:
        """Stop every instance, letting calls in flight finish within ``grace``."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(instance.stop(grace) for instance in list(self._instances)), return_exceptions=True)
        self._instances.clear()

    def _own(self, coroutine: object, what: str) -> None:
        task = asyncio.create_task(coroutine, name=f"pool:{self.function.name}:{what}")  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- calls -----------------------------------------------------------------

    async def call(self, call: Call) -> bytes:
        """Run ``call`` on an instance; return the result payload or raise a ``Fault``."""
        if len(call.payload) > self._limits.message_max:
            raise Fault(
                faults.MESSAGE_TOO_LARGE,
                f"input of {len(call.payload)} bytes exceeds message.length.max ({self._limits.message_max} bytes)",
            )
        self._waiting += 1
        started = time.monotonic()
        try:
            async with self._slots:
                self._waiting -= 1
                instance = await self._lend()
                return await instance.call(call, self._limits.timeout)
        except Fault as fault:
            if fault.error_type == faults.TIMEOUT:
                self.stats.timeouts += 1
            self.stats.observe(time.monotonic() - started, True)
            raise
        else:
            self.stats.observe(time.monotonic() - started, False)
        finally:
            self._notify()

    async def _lend(self) -> Instance:
        """An instance with a free slot: a ready one, else a new one, else wait."""
        while True:
            self._raise_load_fault()
            instance = self._pick()
            if instance is not None:
                return instance
            if len(self._instances) + self._starting < self._limits.max:
                instance = await self._spawn(cold=True)
                if instance.in_flight < self._limits.concurrency:
                    return instance
                continue
            changed = self._changed
            await changed.wait()

    def _pick(self) -> Instance | None:
        # The least busy ready instance; among equals the most recently used, so
        # that spare instances stay idle long enough to be evicted.
        best: Instance | None = None
        for instance in self._instances:
            if not instance.ready or instance.in_flight >= self._limits.concurrency:
                continue
            if best is None or (instance.in_flight, -instance.last_used) < (best.in_flight, -best.last_used):
                best = instance
        return best

    def _raise_load_fault(self) -> None:
        if self._load_fault is not None and time.monotonic() < self._retry_at:
            fault = self._load_fault
            raise Fault(fault.error_type, fault.message, fault.stack)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- instances -------------------------------------------------------------

    async def _spawn(self, *, cold: bool = False) -> Instance:
        """Start one instance; on a load failure, back off and raise the fault."""
        number = next(self._numbers)
        name = f"{self.function.name}#{number}"
        address = f"unix:{self._socket_dir / f'{self.function.name[:40]}-{number}.sock'}"
        instance = Instance(
            name=name,
            argv=runtime_argv(self.function.runtime),
            cwd=self.function.codedir,
            env=instance_env(self.function, address),
            address=address,
            message_max=self._limits.message_max,
            on_exit=self._exited,
        )
        self._starting += 1
        try:
            await instance.start(self._limits.starttimeout)
        except Fault as fault:
            self._failed_to_start(name, fault)
            raise
        finally:
            self._starting -= 1
        self._load_fault = None
        self._backoff = BACKOFF_START
        if self._closing:
            await instance.stop(0)
            raise Fault(faults.UNAVAILABLE_FAULT, f"{self.function.name} is shutting down")
        self._instances.append(instance)
        if cold:
            self.stats.cold_starts += 1
        log.debug("%s started (pid %s)", name, instance.pid)
        self._notify()
        return instance

    async def _spawn_quietly(self) -> None:
        with contextlib.suppress(Fault):
            await self._spawn()

    def _failed_to_start(self, name: str, fault: Fault) -> None:
        self._load_fault = fault
        self._retry_at = time.monotonic() + self._backoff
        log.error(
            "%s failed to start: %s: %s%s (next try in %gs)",
            name,
            fault.error_type,
            fault.message,
            "".join(f"\n    {frame}" for frame in fault.stack),
            self._backoff,
        )
        self._backoff = min(self._backoff * 2, self._limits.backoff_max)
        self._notify()

    def _exited(self, instance: Instance) -> None:
        if instance in self._instances:
            self._instances.remove(instance)
            if not self._closing and not instance.stopping:
                self.stats.crashes += 1
                log.warning("%s exited unexpectedly (status %s); it will be replaced", instance.name,
                            instance.process.returncode if instance.process else None)
        self._notify()

    async def _keep_min(self) -> None:
        """Keep ``min`` instances alive, respecting the load-failure backoff."""
        while True:
            missing = self._limits.min - len(self._instances) - self._starting
            if missing > 0 and time.monotonic() >= self._retry_at:
                await asyncio.gather(*(self._spawn_quietly() for _ in range(missing)))
                continue
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, self._retry_at - time.monotonic())):
                    await changed.wait()

    async def _evict_idle(self) -> None:
        """Every ``evicttime``, stop instances idle longer than ``idletime`` (never below ``min``)."""
        while True:
            await asyncio.sleep(self._limits.evicttime)
            now = time.monotonic()
            idle = [i for i in self._instances if i.ready and not i.in_flight and now - i.last_used > self._limits.idletime]
            spare = len(self._instances) - self._limits.min
            for instance in sorted(idle, key=lambda i: i.last_used)[: max(0, spare)]:
                self._retire(instance)
                log.debug("%s evicted after %.0fs idle", instance.name, now - instance.last_used)

    def _retire(self, instance: Instance) -> None:
        instance.stopping = True
        self._instances.remove(instance)
        self._own(instance.stop(self._limits.timeout), f"stop:{instance.name}")

    async def _watch_memory(self, limit: int) -> None:
        """Kill an instance whose resident memory exceeds ``instance.memory``."""
        while True:
            await asyncio.sleep(MEMORY_CHECK_INTERVAL)
            for instance in list(self._instances):
                rss = instance.rss()
                if rss is not None and rss > limit:
                    log.warning("%s uses %d bytes of resident memory, above instance.memory (%d): killed",
                                instance.name, rss, limit)
                    instance.kill(Fault(faults.OUT_OF_MEMORY,
                                        f"{self.function.name} used more than instance.memory ({limit} bytes)"))

    @property
    def waiting(self) -> int:
        """Calls waiting for a free slot."""
        return self._waiting

    def _gauges(self) -> tuple[int, int, int]:
        busy = sum(1 for instance in self._instances if instance.in_flight)
        return len(self._instances), busy, self._waiting
