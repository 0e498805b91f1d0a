"""The instance pool (SPEC §8, issue #3) against real runtime processes.

Each test builds a real ``Pool`` over the fixture functions in
``tests/functions/pool_*`` and checks one promise: scaling, supervision,
limits, isolation. Every pool is stopped at the end and no runtime may outlive it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest

from edgefn.manager.config import FrozenEnv, FunctionConfig, InstanceConfig
from edgefn.manager.instance import Instance
from edgefn.manager.message import Call, envelope
from edgefn.manager.metrics import Metrics
from edgefn.manager.lending import PIPELINE_MAX
from edgefn.manager.pool import Pool
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from support.manager import FUNCTIONS
from support.processes import alive

pytestmark = pytest.mark.timeout(60)


def function(handler: str, case: str = "pool_worker", env: dict[str, str] | None = None, **instance: object) -> FunctionConfig:
    """A python function over a pool fixture, with short pool timings unless given."""
    limits = {"idletime": 600.0, "evicttime": 600.0, "timeout": 10.0, "starttimeout": 10.0, "backoff_max": 2.0, **instance}
    return FunctionConfig(
        name=f"pool-{uuid.uuid4().hex[:6]}",
        runtime="python",
        handler=handler if "." in handler else f"index.{handler}",
        codedir=FUNCTIONS / case,
        env=FrozenEnv(env or {}),
        instance=InstanceConfig(**limits),  # type: ignore[arg-type]
    )


def message(fn: FunctionConfig, event: object = None, *, raw: bytes | None = None) -> Call:
    payload = raw if raw is not None else (b"" if event is None else orjson.dumps(event))
    return Call(id=1, qos=1, topic="pool/test", payload=payload, timestamp=int(time.time()), function=fn.name,
                invoke_id=str(uuid.uuid4()))


def runtime_children(socket_dir: Path) -> list[int]:
    """Live (not zombie) runtime processes of this test process with a socket in ``socket_dir``."""
    found = []
    me = str(os.getpid())
    marker = f"EDGEFN_INSTANCE_ADDRESS=unix:{socket_dir}/".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if fields[1] != me or fields[0] == "Z":
                continue
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker in environ.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(fn: FunctionConfig, tmp_path: Path) -> AsyncIterator[Pool]:
    """A started pool; stopped afterwards, and then no runtime process may be left."""
    socket_dir = tmp_path / "sockets"
    socket_dir.mkdir(mode=0o700, parents=True)
    pool = Pool(fn, socket_dir=socket_dir, stats=Metrics().function(fn.name))
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop(2)
        await eventually(lambda: not runtime_children(socket_dir), "every runtime exited after stop()", 5)
        assert list(socket_dir.iterdir()) == [], "socket files are removed with their instances"


async def fault_of(pool: Pool, call: Call) -> Fault:
    with pytest.raises(Fault) as caught:
        await pool.call(call)
    return caught.value


def pids(pool: Pool) -> set[int]:
    return {instance.pid for instance in pool.instances if instance.pid is not None}


# -- scaling -------------------------------------------------------------------


async def test_min_instances_are_warm_when_start_returns(tmp_path: Path) -> None:
    fn = function("pid", min=2, max=3)
    async with running(fn, tmp_path) as pool:
        assert len(pool.instances) == 2 and all(instance.ready for instance in pool.instances)
        result = orjson.loads(await pool.call(message(fn, {"n": 1})))
        assert result["pid"] in pids(pool)
        assert pool.stats.cold_starts == 0


async def test_instances_start_on_demand_up_to_max_under_concurrent_load(tmp_path: Path) -> None:
    fn = function("sleep", min=0, max=3)
    async with running(fn, tmp_path) as pool:
        assert pool.instances == ()
        busiest = 0

        async def watch() -> None:
            nonlocal busiest
            while True:
                busiest = max([busiest, *(instance.in_flight for instance in pool.instances)])
                assert len(pool.instances) <= 3
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        results = await asyncio.gather(*(pool.call(message(fn, {"sleep": 0.3})) for _ in range(9)))
        watcher.cancel()
        served_by = {orjson.loads(result)["pid"] for result in results}
        assert len(served_by) == 3 and len(pool.instances) == 3
        assert pool.stats.cold_starts == 3
        # Once all three run, later calls may queue in a runtime (PIPELINE_MAX), never more.
        assert busiest <= 1 + PIPELINE_MAX, "concurrency 1: at most PIPELINE_MAX more queued on one instance"
        assert pool.stats.snapshot()["calls"] == 9


async def test_a_burst_of_short_calls_queues_deep_in_one_runtime_and_keeps_its_order(tmp_path: Path) -> None:
    # One instance, 300 short calls at once: once it has answered, calls queue in its
    # runtime (and share Talk frames) far beyond the first few, never beyond
    # PIPELINE_MAX, and a single sequential instance still answers in input order.
    fn = function("pid", min=1, max=1)
    async with running(fn, tmp_path) as pool:
        await pool.call(message(fn, -1))  # answered once: it may pipeline from now on
        busiest = 0

        async def watch() -> None:
            nonlocal busiest
            while True:
                busiest = max(busiest, pool.instances[0].in_flight)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        results = await asyncio.gather(*(pool.call(message(fn, n)) for n in range(300)))
        watcher.cancel()
        assert [orjson.loads(result)["event"] for result in results] == list(range(300))
        assert 8 < busiest <= 1 + PIPELINE_MAX, f"{busiest} calls were in flight on the instance at most"


async def test_calls_beyond_max_times_concurrency_wait_and_are_counted(tmp_path: Path) -> None:
    fn = function("wait_for_file", min=1, max=1)
    gate = tmp_path / "gate"
    async with running(fn, tmp_path) as pool:
        calls = [asyncio.create_task(pool.call(message(fn, {"file": str(gate)}))) for _ in range(4)]
        await eventually(lambda: pool.waiting == 3, "three calls wait for the one slot")
        assert pool.stats.snapshot()["queued"] == 3 and pool.stats.snapshot()["busy"] == 1
        gate.touch()
        await asyncio.gather(*calls)
        assert pool.waiting == 0


async def test_async_handler_runs_concurrency_calls_at_once_on_one_instance(tmp_path: Path) -> None:
    fn = function("overlap", min=1, max=1, concurrency=3)
    async with running(fn, tmp_path) as pool:
        results = await asyncio.gather(*(pool.call(message(fn, {"sleep": 0.3})) for _ in range(6)))
        decoded = [orjson.loads(result) for result in results]
        assert {r["pid"] for r in decoded} == pids(pool)
        assert max(r["most"] for r in decoded) == 3


async def test_idle_instances_are_evicted_down_to_min_and_not_counted_as_crashes(tmp_path: Path) -> None:
    fn = function("wait_for_file", min=1, max=3, idletime=0.3, evicttime=0.1)
    gate = tmp_path / "gate"
    async with running(fn, tmp_path) as pool:
        (warm,) = pids(pool)
        calls = [asyncio.create_task(pool.call(message(fn, {"file": str(gate)}))) for _ in range(3)]
        await eventually(lambda: sum(i.in_flight for i in pool.instances) == 3, "three instances busy")
        gate.touch()
        await asyncio.gather(*calls)
        scaled = pids(pool)
        assert len(scaled) == 3
        await eventually(lambda: len(pool.instances) == 1, "idle instances evicted down to min")
        await eventually(lambda: not any(alive(pid) for pid in scaled - pids(pool)), "evicted runtimes exited")
        await asyncio.sleep(0.5)  # several more eviction ticks: never below min
        assert len(pool.instances) == 1
        assert pool.stats.crashes == 0
        assert pids(pool) <= scaled and warm in scaled


# -- supervision -----------------------------------------------------------------


async def test_crashed_instance_fails_its_call_as_instance_crashed_and_is_replaced(tmp_path: Path) -> None:
    fn = function("crash", min=1, max=1)
    async with running(fn, tmp_path) as pool:
        (first,) = pids(pool)
        fault = await fault_of(pool, message(fn, {"status": 7}))
        assert fault.error_type == faults.INSTANCE_CRASHED and fault.retriable
        assert "exited with status 7" in fault.message
        served = orjson.loads(await pool.call(message(fn, {})))  # the next message is served
        assert served["pid"] != first
        assert pool.stats.crashes == 1


async def test_kill_9_from_outside_is_always_instance_crashed_naming_the_signal(tmp_path: Path) -> None:
    fn = function("wait_for_file", min=1, max=1)
    async with running(fn, tmp_path) as pool:
        for round in range(4):
            call = asyncio.create_task(pool.call(message(fn, {"file": str(tmp_path / "never")})))
            await eventually(lambda: any(i.in_flight for i in pool.instances), "the call is in flight")
            (victim,) = pids(pool)
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(Fault) as caught:
                await call
            assert caught.value.error_type == faults.INSTANCE_CRASHED, (round, caught.value)
            assert "killed by signal 9" in caught.value.message
        (tmp_path / "ready").touch()
        result = orjson.loads(await pool.call(message(fn, {"file": str(tmp_path / "ready")})))
        assert result["released"]


async def test_idle_min_instance_killed_from_outside_is_replaced(tmp_path: Path) -> None:
    fn = function("pid", min=1, max=2)
    async with running(fn, tmp_path) as pool:
        (victim,) = pids(pool)
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: len(pool.instances) == 1 and victim not in pids(pool), "a new min instance")
        assert pool.stats.crashes == 1 and pool.stats.cold_starts == 0


async def test_timeout_answers_at_once_kills_the_instance_and_never_blocks_other_calls(tmp_path: Path) -> None:
    fn = function("wait_for_file", min=2, max=2, timeout=1.0)
    released = tmp_path / "released"
    released.touch()
    async with running(fn, tmp_path) as pool:
        started = time.monotonic()
        hung = asyncio.create_task(pool.call(message(fn, {"file": str(tmp_path / "never")})))
        await eventually(lambda: any(i.in_flight for i in pool.instances), "the hung call is in flight")
        (hung_on,) = [i.pid for i in pool.instances if i.in_flight]
        quick = orjson.loads(await pool.call(message(fn, {"file": str(released)})))
        assert quick["pid"] != hung_on and time.monotonic() - started < 1.0
        with pytest.raises(Fault) as caught:
            await hung
        elapsed = time.monotonic() - started
        assert caught.value.error_type == faults.TIMEOUT and not caught.value.retriable
        assert 1.0 <= elapsed < 2.0, elapsed
        await eventually(lambda: not alive(hung_on), "the hung instance was killed")
        await eventually(lambda: len(pool.instances) == 2, "and replaced")
        assert pool.stats.timeouts == 1 and pool.stats.crashes == 0
        assert orjson.loads(await pool.call(message(fn, {"file": str(released)})))["released"]


async def test_cancelled_call_keeps_its_slot_until_the_runtime_answers(tmp_path: Path) -> None:
    fn = function("wait_for_file", min=1, max=1)
    gate = tmp_path / "gate"
    async with running(fn, tmp_path) as pool:
        first = asyncio.create_task(pool.call(message(fn, {"file": str(gate)})))
        await eventually(lambda: pool.instances[0].in_flight == 1, "the first call is in flight")
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        (instance,) = pool.instances
        assert instance.in_flight == 1, "the runtime still runs the cancelled call"
        second = asyncio.create_task(pool.call(message(fn, {"file": str(gate)})))
        await asyncio.sleep(0.1)  # asserting something does not happen: give it the chance
        assert pool.waiting == 1 and instance.in_flight == 1
        gate.touch()
        assert orjson.loads(await second)["released"]
        assert instance.in_flight == 0 and pool.instances == (instance,)


async def test_stop_fails_waiting_calls_and_ends_the_busy_instance(tmp_path: Path) -> None:
    fn = function("wait_for_file", min=1, max=1)
    socket_dir = tmp_path / "sockets"
    socket_dir.mkdir(mode=0o700)
    pool = Pool(fn, socket_dir=socket_dir, stats=Metrics().function(fn.name))
    await pool.start()
    busy = asyncio.create_task(pool.call(message(fn, {"file": str(tmp_path / "never")})))
    waiting = asyncio.create_task(pool.call(message(fn, {"file": str(tmp_path / "never")})))
    await eventually(lambda: pool.waiting == 1, "a call waits")
    started = time.monotonic()
    await pool.stop(0.5)
    assert time.monotonic() - started < 3
    outcomes = await asyncio.gather(busy, waiting, return_exceptions=True)
    assert all(isinstance(outcome, Fault) for outcome in outcomes), outcomes
    assert {outcome.error_type for outcome in outcomes} <= {faults.INSTANCE_CRASHED, faults.UNAVAILABLE_FAULT}  # type: ignore[union-attr]
    await eventually(lambda: not runtime_children(socket_dir), "no runtime left")
    late = await fault_of(pool, message(fn, {"file": "x"}))
    assert late.error_type == faults.UNAVAILABLE_FAULT


async def test_a_crash_loop_backs_off_instead_of_restarting_hot(tmp_path: Path) -> None:
    fn = function("handler", "pool_dies_young", min=1, max=1, backoff_max=1.0)
    async with running(fn, tmp_path) as pool:
        await asyncio.sleep(3.0)  # observing a rate over a window
        # Hot, it would restart every ~0.6 s (start + 0.5 s of life): 5 or more times.
        # Backed off 0.5, 1, 1 s between them: at most 3 deaths.
        assert 1 <= pool.stats.crashes <= 3, pool.stats.snapshot()


# -- loading ----------------------------------------------------------------------


async def test_import_error_fails_calls_at_once_and_respawns_back_off(tmp_path: Path) -> None:
    fn = function("handler", "pool_import_error", min=1, max=3, backoff_max=1.0)
    async with running(fn, tmp_path) as pool:
        assert pool.stats.start_failures == 1
        started = time.monotonic()
        outcomes = await asyncio.gather(*(pool.call(message(fn, {})) for _ in range(10)), return_exceptions=True)
        assert time.monotonic() - started < 1.0, "no call waits for a respawn"
        for outcome in outcomes:
            assert isinstance(outcome, Fault) and outcome.error_type == faults.IMPORT_MODULE_ERROR
            assert "edgefn_pool_test_missing_module" in outcome.message
        window = time.monotonic()
        while time.monotonic() - window < 2.5:  # a steady stream of calls
            await fault_of(pool, message(fn, {}))
            await asyncio.sleep(0.02)
        # Respawns at +0.5, +1.5, +2.5 s at most (backoff 0.5, 1, 1), never one per call.
        assert 2 <= pool.stats.start_failures <= 5, pool.stats.snapshot()
        assert pool.instances == ()


async def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    fn = function("handler", "pool_syntax_error", min=0, max=1)
    async with running(fn, tmp_path) as pool:
        fault = await fault_of(pool, message(fn, {}))
        assert fault.error_type == faults.USER_CODE_SYNTAX_ERROR and not fault.retriable
        assert "index.py" in fault.message + "".join(fault.stack)
        again = await fault_of(pool, message(fn, {}))  # in backoff: the same answer, at once
        assert again.error_type == faults.USER_CODE_SYNTAX_ERROR
        assert pool.stats.start_failures == 1


async def test_instance_not_ready_within_starttimeout_is_killed_and_retried_with_backoff(tmp_path: Path) -> None:
    fn = function("handler", "pool_slow_start", min=1, max=1, starttimeout=0.3, backoff_max=1.0)
    started = time.monotonic()
    async with running(fn, tmp_path) as pool:
        assert time.monotonic() - started < 2.0
        assert pool.stats.start_failures == 1 and pool.instances == ()
        fault = await fault_of(pool, message(fn, {}))
        assert fault.error_type == faults.UNAVAILABLE_FAULT and "starttimeout" in fault.message
        await eventually(lambda: not runtime_children(tmp_path / "sockets"), "the slow instance was killed", 3)
        await eventually(lambda: pool.stats.start_failures >= 2, "min is retried", 5)
        assert pool.stats.start_failures <= 4


# -- limits and isolation -----------------------------------------------------------------


async def test_oversize_input_is_refused_before_any_instance_and_enveloped_truncated(tmp_path: Path) -> None:
    fn = function("big", min=0, max=1, message_max=4096)
    async with running(fn, tmp_path) as pool:
        call = message(fn, raw=b"y" * 5000)
        fault = await fault_of(pool, call)
        assert fault.error_type == faults.MESSAGE_TOO_LARGE and "5000" in fault.message
        assert pool.instances == () and pool.stats.cold_starts == 0
        body = orjson.loads(envelope(call, fault, runtime="python", attempts=1, payload_max=pool.message_max))
        assert body["functionMessage"]["PayloadTruncated"] is True
        assert len(body["functionMessage"]["Payload"]) < 4096


async def test_oversize_result_fails_that_call_only(tmp_path: Path) -> None:
    fn = function("big", min=1, max=1, message_max=64 * 1024)
    async with running(fn, tmp_path) as pool:
        (pid,) = pids(pool)
        assert await pool.call(message(fn, 64 * 1024)) == b"x" * 64 * 1024  # exactly the limit passes
        fault = await fault_of(pool, message(fn, 64 * 1024 + 1))
        assert fault.error_type == faults.MESSAGE_TOO_LARGE and not fault.retriable
        assert await pool.call(message(fn, 10)) == b"x" * 10
        assert pids(pool) == {pid}


async def test_grpc_limits_are_set_on_both_sides_from_message_max(tmp_path: Path) -> None:
    # 6 MiB passes only when both the manager's and the runtime's gRPC limits
    # follow message.length.max (gRPC's own default is 4 MiB).
    size = 6 * 1024 * 1024
    fn = function("big", min=1, max=1, message_max=size)
    async with running(fn, tmp_path / "big") as pool:
        assert len(await pool.call(message(fn, size))) == size
    echo = function("pid", min=1, max=1, message_max=size)
    async with running(echo, tmp_path / "echo") as pool:
        payload = orjson.dumps("z" * (size - 100))
        assert orjson.loads(await pool.call(message(echo, raw=payload)))["event"] == "z" * (size - 100)


async def test_memory_bomb_kills_only_its_instance_with_out_of_memory(tmp_path: Path) -> None:
    fn = function("bomb", min=1, max=1, memory=200 * 1024 * 1024)
    async with running(fn, tmp_path) as pool:
        (pid,) = pids(pool)
        fault = await fault_of(pool, message(fn, {}))
        assert fault.error_type == faults.OUT_OF_MEMORY and not fault.retriable
        assert not alive(pid)
        assert pool.stats.oom_kills == 1 and pool.stats.crashes == 0
        await eventually(lambda: len(pool.instances) == 1, "a fresh instance replaces it")


async def test_environment_is_env_plus_a_minimal_base_never_the_managers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PASSWORD", "manager-secret")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("EDGEFN_TOKEN", "manager-token")  # the manager's own settings stay its own
    fn = function("environment", min=0, max=1, env={"GREETING": "hi"})
    async with running(fn, tmp_path) as pool:
        seen = orjson.loads(await pool.call(message(fn, {})))
    assert seen["GREETING"] == "hi" and seen["LC_ALL"] == "C.UTF-8" and "PATH" in seen
    assert "HUB_PASSWORD" not in seen and "manager-secret" not in orjson.dumps(seen).decode()
    allowed = {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "GREETING", "PYTHONUNBUFFERED",
               "BAETYL_SERVICE_INSTANCE_ADDRESS", "BAETYL_SERVICE_INSTANCE_NAME"}
    assert {key for key in seen if not key.startswith(("LC_", "EDGEFN_"))} <= allowed
    assert "EDGEFN_TOKEN" not in seen and "manager-token" not in orjson.dumps(seen).decode()
    assert seen["EDGEFN_INSTANCE_ADDRESS"].startswith(f"unix:{tmp_path / 'sockets'}")
    assert seen["BAETYL_SERVICE_INSTANCE_ADDRESS"] == seen["EDGEFN_INSTANCE_ADDRESS"]
    assert seen["BAETYL_SERVICE_INSTANCE_NAME"] == fn.name


async def test_instances_listen_on_unix_sockets_in_the_private_directory(tmp_path: Path) -> None:
    fn = function("pid", min=2, max=2)
    async with running(fn, tmp_path) as pool:
        sockets = sorted((tmp_path / "sockets").iterdir())
        assert len(sockets) == 2 and all(path.is_socket() for path in sockets)
        assert (tmp_path / "sockets").stat().st_mode & 0o777 == 0o700
        assert len({instance.pid for instance in pool.instances}) == 2


# -- observability --------------------------------------------------------------------


async def test_counters_and_a_periodic_debug_status_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fn = function("crash", min=1, max=1)
    metrics = Metrics()
    socket_dir = tmp_path / "sockets"
    socket_dir.mkdir(mode=0o700)
    pool = Pool(fn, socket_dir=socket_dir, stats=metrics.function(fn.name))
    await pool.start()
    try:
        await pool.call(message(fn, {}))
        await fault_of(pool, message(fn, {"status": 3}))
        snapshot = metrics.function(fn.name).snapshot()
        assert snapshot["calls"] == 2 and snapshot["errors"] == 1 and snapshot["crashes"] == 1
        assert snapshot["p50_ms"] > 0 and snapshot["queued"] == 0
        caplog.set_level(logging.INFO, logger="edgefn.metrics")
        status = asyncio.create_task(metrics.log_status(0.05))
        await eventually(lambda: any(f"function={fn.name}" in r.getMessage() for r in caplog.records), "a status line")
        status.cancel()
        line = next(r for r in caplog.records if f"function={fn.name}" in r.getMessage())
        assert line.levelno == logging.INFO and "calls=2" in line.getMessage() and "live=" in line.getMessage()
    finally:
        await pool.stop(2)


# -- a runtime that serves only unary Call (Baetyl's contract) --------------------------


async def test_a_call_only_runtime_is_called_unary_with_the_same_supervision(tmp_path: Path) -> None:
    exits: list[Instance] = []
    address = f"unix:{tmp_path}/unary.sock"
    env = {"PATH": os.environ.get("PATH", ""), "EDGEFN_INSTANCE_ADDRESS": address}
    script = FUNCTIONS / "pool_unary_runtime" / "runtime.py"

    def instance() -> Instance:
        return Instance(name="unary", argv=[sys.executable, str(script)], cwd=tmp_path, env=env, address=address,
                        message_max=1024 * 1024, on_exit=exits.append)

    fn = function("pid")
    first = instance()
    await first.start(10)
    try:
        assert await first.call(message(fn, raw=b"hello"), 5) == b"hello"
        started = time.monotonic()
        with pytest.raises(Fault) as caught:
            await first.call(message(fn, raw=b"hang"), 0.5)
        assert caught.value.error_type == faults.TIMEOUT and time.monotonic() - started < 2
        await eventually(lambda: exits == [first], "the hung instance was killed")
    finally:
        await first.stop(1)
    second = instance()
    await second.start(10)
    try:
        with pytest.raises(Fault) as caught:
            await second.call(message(fn, raw=b"crash"), 5)
        assert caught.value.error_type == faults.INSTANCE_CRASHED and "exited with status 6" in caught.value.message
    finally:
        await second.stop(1)


# -- honest timeouts and fair scheduling: a call is failed only by its own fault ----------
# A call's timeout counts its own execution, from when the runtime starts it; a call that
# never started is never failed by another call's hang, memory or crash (it runs on the
# replacement); and no call waits behind a long call while another instance could take it.


async def outcomes(pool: Pool, fn: FunctionConfig, events: list[dict[str, object]]) -> list[object]:
    async def one(event: dict[str, object]) -> object:
        try:
            return orjson.loads(await pool.call(message(fn, event)))
        except Fault as fault:
            return fault.error_type

    tasks = []
    for event in events:  # in this order: the bad call first, then the others queue behind it
        tasks.append(asyncio.create_task(one(event)))
        await asyncio.sleep(0)
    return await asyncio.gather(*tasks)


async def test_calls_queued_behind_a_hung_call_run_on_the_replacement(tmp_path: Path) -> None:
    fn = function("misbehave", min=1, max=1, timeout=2.0)
    async with running(fn, tmp_path) as pool:
        await pool.call(message(fn, {"n": 0}))  # warm: answered, calls short, so calls pipeline onto it
        results = await outcomes(pool, fn, [{"hang": True}, *({"n": n} for n in range(1, 5))])
    assert results[0] == faults.TIMEOUT
    assert [result["n"] for result in results[1:]] == [1, 2, 3, 4]  # type: ignore[index]
    assert pool.stats.timeouts == 1


async def test_calls_queued_behind_a_memory_hog_run_on_the_replacement(tmp_path: Path) -> None:
    fn = function("misbehave", min=1, max=1, timeout=10.0, memory=200 * 1024 * 1024)
    async with running(fn, tmp_path) as pool:
        await pool.call(message(fn, {"n": 0}))
        results = await outcomes(pool, fn, [{"bomb": True}, *({"n": n} for n in range(1, 5))])
    assert results[0] == faults.OUT_OF_MEMORY
    assert [result["n"] for result in results[1:]] == [1, 2, 3, 4]  # type: ignore[index]


async def test_a_crash_fails_only_the_call_that_was_running(tmp_path: Path) -> None:
    fn = function("crash", min=1, max=1, timeout=10.0)
    async with running(fn, tmp_path) as pool:
        await pool.call(message(fn, {}))
        results = await outcomes(pool, fn, [{"status": 3}, {}, {}, {}])
    assert results[0] == faults.INSTANCE_CRASHED
    assert all(isinstance(result, dict) and "pid" in result for result in results[1:])


async def test_long_calls_never_queue_behind_each_other_while_instances_may_take_them(tmp_path: Path) -> None:
    # 0.5 s calls on up to 4 instances with a 2 s timeout: in bursts of 24, a call
    # waits for a free instance (no clock running) instead of queuing in a busy
    # runtime, so none of them times out.
    fn = function("misbehave", min=1, max=4, timeout=2.0)
    deepest = 0

    async def watch(pool: Pool) -> None:
        nonlocal deepest
        while True:
            deepest = max([deepest, *(instance.in_flight for instance in pool.instances)])
            await asyncio.sleep(0.01)

    async with running(fn, tmp_path) as pool:
        watcher = asyncio.create_task(watch(pool))
        try:
            for burst in range(3):
                results = await outcomes(pool, fn, [{"sleep": 0.5, "n": n} for n in range(24)])
                assert [r if isinstance(r, str) else r["n"] for r in results] == list(range(24)), burst
        finally:
            watcher.cancel()
    assert pool.stats.timeouts == 0
    assert deepest == 1, "a long call was queued in a busy runtime"


# -- process hygiene: an instance is a process group ----------------------------------------


async def test_a_handlers_children_go_with_its_instance(tmp_path: Path) -> None:
    from support.processes import wait_gone

    fn = function("fork_sleeper", min=1, max=1)
    async with running(fn, tmp_path) as pool:
        first = orjson.loads(await pool.call(message(fn, {})))
        assert alive(first["grandchild"])
        os.kill(first["pid"], signal.SIGKILL)  # the runtime dies: what it started goes too
        await wait_gone(first["grandchild"], timeout=5)
        await eventually(lambda: len(pool.instances) == 1 and pool.instances[0].ready, "a replacement")
        second = orjson.loads(await pool.call(message(fn, {})))
    await wait_gone(second["grandchild"], timeout=5)  # stopping the pool ends them too


async def test_the_memory_watchdog_counts_the_children_of_an_instance(tmp_path: Path) -> None:
    fn = function("fork_hog", min=1, max=1, timeout=30.0, memory=200 * 1024 * 1024)
    async with running(fn, tmp_path) as pool:
        fault = await fault_of(pool, message(fn, {}))
    assert fault.error_type == faults.OUT_OF_MEMORY and pool.stats.oom_kills == 1


@pytest.mark.timeout(90)
async def test_a_handlers_children_do_not_outlive_a_manager_killed_with_sigkill(
    mosquitto: object, topic: str, tmp_path: Path
) -> None:
    from support.manager import ManagerProcess, python_function, write_config
    from support.mqtt import Probe
    from support.processes import wait_gone

    config = write_config(tmp_path, {
        "hub": {"address": mosquitto.address, "clientid": f"fork-{uuid.uuid4().hex[:6]}"},  # type: ignore[attr-defined]
        "rules": [{"subscribe": {"topic": f"{topic}/in", "qos": 1}, "function": {"name": "forks"},
                   "publish": {"topic": f"{topic}/out", "qos": 1}}],
        "functions": [python_function("forks", "pool_worker", "index.fork_sleeper")],
    })
    async with Probe(mosquitto.port, [f"{topic}/out"]) as probe:  # type: ignore[attr-defined]
        with ManagerProcess(config) as manager:
            await asyncio.to_thread(manager.wait_ready)
            await probe.publish(f"{topic}/in", b"{}", qos=1)
            answer = orjson.loads((await probe.next()).payload)
            assert alive(answer["grandchild"])
            manager.process.send_signal(signal.SIGKILL)
            await wait_gone(answer["pid"], timeout=10)
            await wait_gone(answer["grandchild"], timeout=10)
