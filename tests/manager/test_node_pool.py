"""A Node function's in-process Pool: idle eviction down to ``min`` (SPEC §8, issue #4 point 3),
and the batched Talk frames between the manager and the Node runtime.

The pool is the manager's own ``Pool`` object on this test's event loop, spawning
real ``node`` instances; which instance answered is read from the answers (the
handler returns its pid) and an instance's end is awaited on a pidfd.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import orjson
import pytest

from edgefn.manager.config import FunctionConfig, InstanceConfig
from edgefn.manager.launch import NODE_ENTRY, LaunchError, node_executable
from edgefn.manager.message import Call
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault
from edgefn.wire import function_pb2, function_pb2_grpc
from support.processes import alive, wait_gone

CODEDIR = Path(__file__).resolve().parent.parent / "functions" / "node_pool"
IDLE = 0.3  # idletime and evicttime, seconds

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def node() -> str:
    """A loud failure (never a skip) when node is missing."""
    try:
        return node_executable()
    except LaunchError as exc:
        pytest.fail(f"the Node pool tests need Node.js: {exc}")


def call(event: object, function: str = "") -> Call:
    # No FunctionName: the runtime serves its one function (a name must be that function's).
    return Call(1, 1, "t/in", orjson.dumps(event), int(time.time()), function, str(uuid.uuid4()))


@pytest.fixture(params=[0, 1], ids=["min0", "min1"])
async def pool(request: pytest.FixtureRequest, socket_dir: Path) -> AsyncIterator[Pool]:
    limits = InstanceConfig(min=request.param, max=2, idletime=IDLE, evicttime=IDLE, timeout=10)
    function = FunctionConfig("slow-js", "node", "index.slow", CODEDIR, instance=limits)
    pool = Pool(function, socket_dir=socket_dir, stats=Metrics().function("slow-js"))
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop(5)


async def test_idle_instances_are_evicted_down_to_min_and_min_stays(pool: Pool) -> None:
    minimum = pool.function.instance.min
    # Two overlapping calls on a pool of max 2, concurrency 1: two instances.
    answers = await asyncio.gather(*(pool.call(call({"n": n, "ms": 1500})) for n in range(2)))
    pids = {orjson.loads(answer)["pid"] for answer in answers}
    assert len(pids) == 2
    tasks = {asyncio.create_task(wait_gone(pid), name=f"gone:{pid}"): pid for pid in pids}
    evicted: set[int] = set()
    try:
        async with asyncio.timeout(15):
            waiting = set(tasks)
            while len(evicted) < 2 - minimum:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                evicted |= {tasks[task] for task in done if task.result() is None}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert pool.stats.snapshot()["live"] == minimum
    await asyncio.sleep(4 * IDLE)  # several eviction rounds: none goes below min
    kept = pids - evicted
    assert len(kept) == minimum and all(alive(pid) for pid in kept)
    assert pool.stats.snapshot()["live"] == minimum
    cold = pool.stats.cold_starts
    again = orjson.loads(await pool.call(call({"n": 9, "ms": 0})))["pid"]
    if minimum:
        assert again in kept and pool.stats.cold_starts == cold  # served warm by the kept instance
    else:
        assert again not in pids and pool.stats.cold_starts == cold + 1


# -- batched Talk frames (the manager's fast path) ------------------------------------------------


async def test_many_calls_on_one_instance_all_get_their_own_answer(socket_dir: Path) -> None:
    # One sequential instance and a burst of calls: the pool queues them on it, several to a Talk
    # frame, and the runtime answers several to a frame; oversize results fail alone.
    limits = InstanceConfig(min=1, max=1, message_max=1024, timeout=20)
    function = FunctionConfig("big-js", "node", "index.big", CODEDIR, instance=limits)
    pool = Pool(function, socket_dir=socket_dir, stats=Metrics().function("big-js"))
    await pool.start()
    sizes = [n * 37 % 1100 for n in range(300)]
    try:
        outcomes = await asyncio.gather(*(pool.call(call({"size": size})) for size in sizes), return_exceptions=True)
    finally:
        await pool.stop(5)
    for size, outcome in zip(sizes, outcomes):
        if size + 2 <= 1024:
            assert outcome == orjson.dumps("x" * size)
        else:
            assert isinstance(outcome, Fault) and outcome.error_type == faults.MESSAGE_TOO_LARGE, outcome
    assert pool.stats.cold_starts == 0  # one instance did it all


def test_a_batch_frame_is_answered_call_by_call_in_batch_frames(node: str, socket_dir: Path) -> None:
    address = f"unix:{socket_dir}/batch.sock"
    env = {"PATH": os.environ["PATH"], "HOME": str(socket_dir), "EDGEFN_INSTANCE_ADDRESS": address,
           "EDGEFN_FUNCTION_HANDLER": "index.big", "EDGEFN_MESSAGE_MAX": "1024"}
    process = subprocess.Popen([node, str(NODE_ENTRY)], cwd=CODEDIR, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        handshake = orjson.loads(process.stdout.readline())
        assert handshake["batch"] is True and handshake["ready"] is True
        sizes = [1, 2000, 0, 3]
        frame = function_pb2.FunctionMessage(Batch=[
            function_pb2.FunctionMessage(Payload=orjson.dumps({"size": size}), Sequence=n, ID=n)
            for n, size in enumerate(sizes, 1)])
        with grpc.insecure_channel(address) as channel:
            frames = list(function_pb2_grpc.FunctionStub(channel).Talk(iter([frame]), timeout=10))
        answers = {answer.Sequence: answer for reply in frames for answer in (reply.Batch or [reply])}
        assert len(frames) < len(sizes)  # answers shared frames
        assert sorted(answers) == [1, 2, 3, 4] and all(answers[n].ID == n for n in answers)
        assert [answers[n].Payload for n in (1, 3, 4)] == [b'"x"', b'""', b'"xxx"']
        assert answers[2].Code == faults.RESOURCE_EXHAUSTED and answers[2].Payload == b""
        assert orjson.loads(answers[2].Error)["errorType"] == faults.MESSAGE_TOO_LARGE
    finally:
        process.terminate()
        assert process.wait(10) == 0
        process.stdout.close()  # type: ignore[union-attr]
