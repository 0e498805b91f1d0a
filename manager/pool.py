"""A function's pool of runtime instances (SPEC §8).

``min`` instances start with the pool; more start on demand up to ``max``; an
instance idle longer than ``idletime`` is stopped (checked every ``evicttime``),
never below ``min``. At most ``max × concurrency`` calls are in flight; the rest
wait for a slot. Dead, hung and oversized instances are replaced.

Failing starts back off: a handler that cannot load fails calls at once with
its load fault while respawns wait 500 ms, then twice as long each time, up to
``backoff.max``. Concurrent starts that fail together count as one failure. An
instance that dies unexpectedly within ``STABLE_AFTER`` of its start backs off
the ``min`` keeper the same way, so a crash loop is never a hot loop; calls
still start instances on demand (each is a message's own retry).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING

from edgefn.manager.config import FunctionConfig
from edgefn.manager.identity import socket_folder
from edgefn.manager.instance import Instance
from edgefn.manager.launch import LaunchError, instance_env
from edgefn.manager.lending import PIPELINE_MAX, PIPELINE_SHORT, PIPELINE_STALE, Lender, pick, room_on
from edgefn.manager.message import Call
from edgefn.manager.metrics import FunctionStats
from edgefn.manager.process import group_rss
from edgefn.manager.runners import Launch, launcher as find_launcher
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault, NotStarted

if TYPE_CHECKING:
    from edgefn.manager.client import OutputSink

log = logging.getLogger("edgefn.pool")

BACKOFF_START = 0.5
# An instance that lived this long was healthy: its exit resets the backoff.
STABLE_AFTER = 5.0
# Resident memory is sampled this often when a function sets instance.memory.
MEMORY_CHECK_INTERVAL = 0.1
# Calls beyond instance slots may queue in a runtime: see manager/lending.py.
TYPICAL_WEIGHT = 0.2
# A call whose instance died before it started is lent again, up to this many times.
NOT_STARTED_MAX = 10
# Socket names are short and unique across every pool of the manager (a hot
# reload runs two pools of one function side by side).
_SOCKET_NUMBERS = itertools.count(1)


class Pool:
    """The instances of one function; ``call`` lends one for a call."""

    def __init__(
        self,
        function: FunctionConfig,
        *,
        socket_dir: Path,
        stats: FunctionStats,
        launcher: Callable[[], Launch] | None = None,
    ) -> None:
        self.function = function
        # Finding the command line may block (node runs `node --version`): done once, in a thread.
        self._launcher = launcher or find_launcher(function)
        self._command: Launch | None = None
        self.runtime = function.runtime
        self.message_max = function.instance.message_max
        self.stats = stats
        self._socket_dir = socket_dir
        self._user_dir: Path | None = None  # instance.user's own socket folder, made at the first start
        self._limits = function.instance
        self._concurrency = function.instance.concurrency
        self._timeout = function.instance.timeout
        self._instances: list[Instance] = []
        self._starting = 0
        self._lenders: collections.deque[Lender] = collections.deque()  # callers waiting to lend, in order
        self._slots = asyncio.Semaphore(self._limits.max * (self._limits.concurrency + PIPELINE_MAX))
        self._waiting = 0
        self._membership = asyncio.Event()  # an instance left, or a start failed
        self._numbers = itertools.count(1)
        self._load_fault: Fault | None = None
        self._retry_at = 0.0
        self._penalized_at = float("-inf")
        self._backoff = BACKOFF_START
        self._tasks: set[asyncio.Task[object]] = set()  # housekeeping and starts: cancelled at stop
        self._leaving: set[asyncio.Task[object]] = set()  # instances stopping or closing: awaited at stop
        self._closing = False
        self._started = False
        self._checking = False  # the start-up check: its failures are the caller's to report
        self._warned = False
        self._starts = 0  # instances that came up: beyond min, each is a replacement or a cold start
        self._typical = 0.0  # moving average of a call's time once lent, seconds
        stats.gauges = self._gauges
        stats.starting = lambda: self._starting

    @property
    def waiting(self) -> int:
        """Calls waiting for a free slot."""
        return self._waiting

    @property
    def warm(self) -> bool:
        """True once ``min`` instances are up (what ``edgefn ready`` waits for)."""
        return len(self._instances) >= self._limits.min

    @property
    def instances(self) -> tuple[Instance, ...]:
        """The live instances (a snapshot)."""
        return tuple(self._instances)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start ``min`` instances (in parallel) and the pool's housekeeping tasks.

        Returns when every ``min`` instance is ready or failed to start; failed
        ones are retried in the background with backoff. A started pool (see
        :meth:`start_checked`) is not started again.
        """
        if not self._started:
            await self._start(checked=False)

    async def start_checked(self, spawned: Callable[[], None] = lambda: None) -> Fault | None:
        """Start as :meth:`start` does, as the start-up check (``edgefn run``): a ``min`` instance
        that fails to start is neither logged nor retried, and its fault is returned (the pool
        stays unstarted, to be stopped); None once every ``min`` instance is up.

        ``spawned`` is called as each ``min`` instance's process is spawned.
        """
        return await self._start(checked=True, spawned=spawned)

    async def _start(self, checked: bool, spawned: Callable[[], None] = lambda: None) -> Fault | None:
        self._checking = checked
        try:
            launches = (self._launch(cold=False, spawned=spawned) for _ in range(self._limits.min))
            started = await asyncio.gather(*launches)
        finally:
            self._checking = False
        fault = next((result for result in started if isinstance(result, Fault)), None)
        if checked and fault is not None:
            return fault
        self._started = True
        self._own(self._keep_min(), "keep-min")
        self._own(self._evict_idle(), "evict")
        if self._limits.memory:
            self._own(self._watch_memory(self._limits.memory), "memory")
        return None

    async def stop(self, grace: float) -> None:
        """Stop every instance, letting calls in flight finish within ``grace``.

        Calls still waiting for an instance fail with ``Runtime.Unavailable``.
        """
        self._closing = True
        self._wake()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        instances, self._instances = self._instances, []
        await asyncio.gather(
            *(instance.stop(grace) for instance in instances), *self._leaving, return_exceptions=True
        )
        if self._user_dir is not None:
            shutil.rmtree(self._user_dir, ignore_errors=True)

    def _own(self, coroutine: Coroutine[object, object, object], what: str,
             tasks: set[asyncio.Task[object]] | None = None) -> asyncio.Task[object]:
        task = asyncio.create_task(coroutine, name=f"pool:{self.function.name}:{what}")
        owner = self._tasks if tasks is None else tasks
        owner.add(task)
        task.add_done_callback(owner.discard)
        return task

    # -- calls -----------------------------------------------------------------

    async def call(self, call: Call, outputs: OutputSink | None = None) -> bytes:
        """Run ``call`` on an instance; return the result payload or raise a ``Fault``.

        ``outputs`` takes each output the call produces before its result. A call
        its instance never started (the instance died running another one) is
        lent another instance: that is no attempt of the caller's.
        """
        limit = self.message_max
        if len(call.payload) > limit:
            raise _too_large("input", len(call.payload), limit)
        started = time.monotonic()
        unstarted = 0
        while True:
            self._waiting += 1
            try:
                await self._slots.acquire()
            except BaseException:
                self._waiting -= 1
                raise
            try:
                try:
                    instance = (None if self._lenders else self._pick()) or await self._lend()
                finally:
                    self._waiting -= 1
                lent = time.monotonic()
                result = await instance.call(call, self._timeout, outputs)
                break
            except NotStarted as fault:
                unstarted += 1
                if unstarted < NOT_STARTED_MAX and not self._closing:
                    continue  # run it elsewhere, or on the replacement
                self.stats.observe(time.monotonic() - started, faults.INSTANCE_CRASHED)
                raise Fault(faults.INSTANCE_CRASHED, fault.message) from None
            except Fault as fault:
                if fault.error_type == faults.TIMEOUT:
                    self.stats.timeouts += 1
                self.stats.observe(time.monotonic() - started, fault.error_type)
                raise
            finally:
                self._slots.release()
        done = time.monotonic()
        # How long calls take once lent: pipelining is for short calls only.
        self._typical += (done - lent - self._typical) * TYPICAL_WEIGHT
        if len(result) > limit:  # built-in runtimes check this; a custom one may not
            self.stats.observe(done - started, faults.MESSAGE_TOO_LARGE)
            raise _too_large("result", len(result), limit)
        self.stats.observe(done - started, False)
        return result

    def _pick(self, pipelined: bool = False) -> Instance | None:
        return pick(self._instances, self._concurrency, pipelined)

    def _pipelining(self) -> bool:
        """Whether calls may queue in runtimes now: no instance is starting, and calls are short."""
        return not self._starting and self._typical < PIPELINE_SHORT

    async def _lend(self) -> Instance:
        """An instance with a free slot: a ready one, else a new one, else wait.

        Lenders take instances in arrival order (any of them may start a new
        one meanwhile), so a function with one instance keeps its input order.
        """
        ticket, line = Lender(), self._lenders
        line.append(ticket)
        try:
            while True:
                if self._closing:
                    raise Fault(faults.UNAVAILABLE_FAULT, f"{self.function.name} is shutting down")
                first = line[0] is ticket
                if first and (instance := self._pick()) is not None:
                    return instance
                if self._may_start():
                    # Waited on, not awaited: the start goes on if this caller gives
                    # up, and a start cancelled by stop() is not this caller's cancel.
                    start = self._launch(cold=True)
                    await asyncio.wait((start,))
                    started = None if start.cancelled() else start.result()
                    if isinstance(started, Fault) and not self._instances:
                        raise _copy(started)
                    continue
                fault = self._load_fault
                if fault is not None and not self._instances and not self._starting:
                    raise _copy(fault)  # cannot load, backing off: fail at once, don't wait
                if first and self._pipelining() and (instance := self._pick(pipelined=True)) is not None:
                    return instance  # at max, all busy, calls short: queue in a runtime rather than here
                await ticket.wait()
        finally:
            head = line[0] is ticket
            line.remove(ticket)
            if head:
                self._freed()  # the next in line may go now

    def _may_start(self) -> bool:
        if len(self._instances) + self._starting >= self._limits.max:
            return False
        if self._load_fault is None:
            return True
        # Loading failed: one probe at a time, after the backoff.
        return not self._starting and time.monotonic() >= self._retry_at

    def _wake(self) -> None:
        """Let every lender look again: an instance came or went, a start failed, a stop."""
        for lender in self._lenders:
            lender.wake()

    def _freed(self) -> None:
        """Slots freed: wake as many lenders, first in line first (each takes its instance and
        leaves, so the next woken is first by then). Waking every lender instead would cost a
        task step per waiting caller per answer; waking one, a loop iteration per lend."""
        lenders = self._lenders
        if not lenders:
            return
        pipelined = self._pipelining()
        fresh = time.monotonic() - PIPELINE_STALE
        room = sum(max(0, room_on(instance, self._concurrency, pipelined, fresh)) for instance in self._instances)
        for lender in itertools.islice(lenders, max(1, room)):
            lender.wake()

    # -- instances -------------------------------------------------------------

    def _launch(self, *, cold: bool, spawned: Callable[[], None] = lambda: None) -> asyncio.Task[object]:
        """Start one instance in a task the pool owns (a caller giving up does not stop it)."""
        self._starting += 1  # now, so that concurrent lenders never start more than max
        return self._own(self._spawn(cold, spawned), "start")

    async def _spawn(self, cold: bool, spawned: Callable[[], None] = lambda: None) -> Instance | Fault:
        """Start one instance; on failure, back off and return the fault."""
        attempt = time.monotonic()
        instance: Instance | None = None
        try:
            instance = await self._new_instance()
            await instance.start(self._limits.starttimeout, spawned)
        except Fault as fault:
            return self._failed_to_start(instance, fault, attempt)
        except (OSError, LaunchError) as exc:
            unavailable = Fault(faults.UNAVAILABLE_FAULT, f"cannot start the {self.runtime} runtime: {exc}")
            return self._failed_to_start(instance, unavailable, attempt)
        finally:
            self._starting -= 1
        if self._closing:
            await instance.stop(0)
            return Fault(faults.UNAVAILABLE_FAULT, f"{self.function.name} is shutting down")
        self._recovered()
        self._instances.append(instance)
        if cold:
            self.stats.cold_starts += 1
        if self._concurrency > 1 and instance.concurrent is False and not self._warned:
            self._warned = True
            log.warning("%s: concurrency %d, but its handler is not async: calls queue on each instance",
                        self.function.name, self._concurrency)
        # A replacement (or a cold start) is news to an operator; the first min instances are in the summary.
        self._starts += 1
        log.log(logging.INFO if self._starts > self._limits.min or cold else logging.DEBUG, "%s started (pid %s) in %.0f ms",
                instance.name, instance.pid, (time.monotonic() - attempt) * 1000,
                extra={"function": self.function.name, "instance": instance.name, "pid": instance.pid})
        self._wake()
        return instance

    async def _new_instance(self) -> Instance:
        if self._command is None:
            self._command = await asyncio.to_thread(self._launcher)
        launch: Launch = self._command
        folder, parent = self._sockets(), None
        if (identity := self._limits.identity) is not None:
            parent = {**os.environ, "HOME": identity.home}  # the user's home (the function's env may still set it)
        address = _loopback_address() if launch.tcp else f"unix:{folder / f'i{next(_SOCKET_NUMBERS)}.sock'}"
        return Instance(
            name=f"{self.function.name}#{next(self._numbers)}",
            argv=launch.argv,
            cwd=self.function.codedir,
            env=instance_env(self.function, address, parent=parent),
            address=address,
            message_max=self.message_max,
            on_exit=self._exited,
            on_free=self._freed,
            handshake=launch.handshake,
            identity=identity,
        )

    def _sockets(self) -> Path:
        """Where this pool's instances bind: the manager's folder, or the user's own subfolder in it."""
        identity = self._limits.identity
        if identity is None or not identity.differs():
            return self._socket_dir
        if self._user_dir is None:
            self._user_dir = socket_folder(self._socket_dir, f"u{next(_SOCKET_NUMBERS)}", identity)
        return self._user_dir

    def _failed_to_start(self, instance: Instance | None, fault: Fault, attempt: float) -> Fault:
        self.stats.start_failures += 1
        self._load_fault = fault
        first = attempt >= self._penalized_at  # starts that failed together are one failure, logged once
        if first:
            self._penalize()
        if first and not self._closing and not self._checking:
            name = instance.name if instance else self.function.name
            stack = "".join(f"\n    {frame}" for frame in fault.stack)
            log.error("%s failed to start: %s: %s%s (next try in %gs)", name, fault.error_type, fault.message,
                      stack, max(0.0, self._retry_at - time.monotonic()),
                      extra={"function": self.function.name, "instance": name, "errorType": fault.error_type})
        self._membership.set()
        self._wake()
        return fault

    def _penalize(self) -> None:
        now = time.monotonic()
        self._retry_at = now + self._backoff
        self._penalized_at = now
        self._backoff = min(self._backoff * 2, self._limits.backoff_max)

    def _recovered(self) -> None:
        if self._load_fault is not None:
            self._load_fault = None
            self._backoff = BACKOFF_START

    def _exited(self, instance: Instance) -> None:
        """An instance's process ended (on purpose or not)."""
        closing = instance.close()
        self._leaving.add(closing)  # type: ignore[arg-type]
        closing.add_done_callback(self._leaving.discard)  # type: ignore[arg-type]
        if instance not in self._instances:
            return  # retired, never added, or the pool is stopping
        self._instances.remove(instance)
        self._wake()
        self._membership.set()
        if self._closing or instance.stopping:
            return
        reason = instance.kill_reason
        if reason is None:
            self.stats.crashes += 1
            log.warning("%s %s unexpectedly; it will be replaced", instance.name, instance.describe_exit(),
                        extra={"function": self.function.name, "instance": instance.name, "pid": instance.pid})
        else:
            if reason.error_type == faults.OUT_OF_MEMORY:
                self.stats.oom_kills += 1
            log.info("%s was killed and will be replaced: %s", instance.name, reason.message,
                     extra={"function": self.function.name, "instance": instance.name, "pid": instance.pid,
                            "errorType": reason.error_type})
        if time.monotonic() - instance.started_at < STABLE_AFTER:
            self._penalize()  # dying young (a crash loop?): the min keeper backs off
        else:
            self._backoff = BACKOFF_START

    async def _keep_min(self) -> None:
        """Keep ``min`` instances alive, respecting the backoff."""
        membership = self._membership
        while True:
            membership.clear()
            missing = self._limits.min - len(self._instances) - self._starting
            delay = self._retry_at - time.monotonic()
            if missing > 0 and delay <= 0:
                await asyncio.gather(*(self._launch(cold=False) for _ in range(missing)))
                continue
            try:
                async with asyncio.timeout(delay if missing > 0 else None):
                    await membership.wait()
            except TimeoutError:
                pass

    async def _evict_idle(self) -> None:
        """Every ``evicttime``, stop instances idle longer than ``idletime`` (never below ``min``)."""
        while True:
            await asyncio.sleep(self._limits.evicttime)
            now = time.monotonic()
            idle = [i for i in self._instances if i.ready and not i.in_flight and now - i.last_used > self._limits.idletime]
            # Count only ready instances: one being killed is already on its way out.
            spare = sum(1 for i in self._instances if i.ready) - self._limits.min
            for instance in sorted(idle, key=lambda i: i.last_used)[: max(0, spare)]:
                log.debug("%s evicted after %.1fs idle", instance.name, now - instance.last_used)
                self._retire(instance)
            if self._instances and all(now - i.started_at >= STABLE_AFTER for i in self._instances):
                self._backoff = BACKOFF_START  # healthy for a while: forget past crashes

    def _retire(self, instance: Instance) -> None:
        instance.stopping = True  # before anything can see it exit: not a crash
        instance.ready = False
        self._instances.remove(instance)
        self._own(instance.stop(self._timeout), f"stop:{instance.name}", self._leaving)

    async def _watch_memory(self, limit: int) -> None:
        """Kill an instance whose resident memory (its whole process group) exceeds ``instance.memory``."""
        while True:
            await asyncio.sleep(MEMORY_CHECK_INTERVAL)
            instances = {instance.pid: instance for instance in self._instances if instance.pid is not None}
            if not instances:
                continue
            usage = await asyncio.to_thread(group_rss, set(instances))
            for pid, rss in usage.items():
                instance = instances[pid]
                if rss > limit and instance.kill_reason is None and not instance.exited:
                    log.warning("%s uses %d bytes of resident memory, above instance.memory (%d): killed",
                                instance.name, rss, limit)
                    instance.kill(Fault(faults.OUT_OF_MEMORY,
                                        f"{self.function.name} used more than instance.memory ({limit} bytes)"))

    def _gauges(self) -> tuple[int, int, int]:
        busy = sum(1 for instance in self._instances if instance.in_flight)
        return len(self._instances), busy, self._waiting


def _loopback_address() -> str:
    """A free TCP port on 127.0.0.1, for a runtime that may not speak unix sockets."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def _too_large(what: str, size: int, limit: int) -> Fault:
    return Fault(faults.MESSAGE_TOO_LARGE, f"{what} of {size} bytes exceeds message.length.max ({limit} bytes)")


def _copy(fault: Fault) -> Fault:
    """A fresh exception per caller (a raised exception carries its own traceback)."""
    return Fault(fault.error_type, fault.message, fault.stack, fault.code)
