"""``workers: N``: N manager processes under one supervisor, sharing the rules' inputs.

The README's "Scale-out" section states what these tests show. Real mosquitto,
real ``edgefn run`` supervisors, workers and runtime processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import textwrap
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from edgefn.manager.config import ConfigError, MetricsConfig, ServerConfig, load_config
from edgefn.manager.worker import shared_filter, worker_config
from support.broker import Mosquitto
from support.chaos import publish_all
from support.manager import ManagerProcess, python_function, write_config
from support.mqtt import Probe
from support.processes import alive, children, wait_gone

COUNT = 2000
LINGER = 0.5  # once every input is answered, how long repeats are waited for
QUIET = 5.0  # no answer for this long: whatever is missing is not coming


def workers_config(folder: Path, broker: Mosquitto, topic: str, clientid: str, workers: int = 2,
                   **instance: object) -> Path:
    return write_config(folder, {
        "workers": workers,
        "hub": {"address": broker.address, "clientid": clientid, "interval": "1s"},
        "rules": [{"subscribe": {"topic": f"{topic}/in", "qos": 1}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}/out/{{clientid}}", "qos": 1}}],
        "functions": [python_function("echo", "chaos", instance={"max": 2, **instance})],
        "shutdown": {"timeout": "10s"},
    })


@contextlib.asynccontextmanager
async def running(config: Path, workers: int = 2) -> AsyncIterator[ManagerProcess]:
    """``edgefn run`` with ``workers``, ready; SIGKILLed on the way out if still running (a failed
    test), and its workers then drain and exit on their own."""
    with ManagerProcess(config) as supervisor:
        await asyncio.to_thread(supervisor.wait_for_log, f"edgefn ready: {workers} workers", 60)
        yield supervisor


def descendants(pid: int) -> set[int]:
    """Every live process under ``pid`` (workers, their runtimes, and theirs)."""
    found, todo = set(), [pid]
    while todo:
        for child in children(todo.pop()):
            found.add(child)
            todo.append(child)
    return found


async def answers(probe: Probe, want: set[int]) -> dict[int, list[str]]:
    """Which worker clientid answered each input id, until ``want`` is answered (then a moment for repeats)."""
    by_id: dict[int, list[str]] = defaultdict(list)
    while True:
        try:
            message = await probe.next(timeout=LINGER if want <= by_id.keys() else QUIET)
        except TimeoutError:
            return by_id
        by_id[orjson.loads(message.payload)["id"]].append(message.topic.value.rsplit("/", 1)[1])


def inputs(numbers: range) -> list[bytes]:
    return [orjson.dumps({"id": n}) for n in numbers]


@contextlib.asynccontextmanager
async def sharing(mosquitto: Mosquitto, topic: str, tmp_path: Path) -> AsyncIterator[tuple[str, Probe, ManagerProcess]]:
    """Two workers sharing ``topic``/in, and a probe on their answers: (the client id, the probe, the supervisor)."""
    clientid = f"wk-{uuid.uuid4().hex[:6]}"
    async with Probe(mosquitto.port, [f"{topic}/out/+"]) as probe:
        async with running(workers_config(tmp_path, mosquitto, topic, clientid)) as supervisor:
            yield clientid, probe, supervisor


# -- sharing the inputs ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_two_workers_answer_each_of_2000_qos1_inputs_exactly_once(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    async with sharing(mosquitto, topic, tmp_path) as (clientid, probe, supervisor):
        await publish_all(mosquitto.port, f"{topic}/in", inputs(range(COUNT)))
        by_id = await answers(probe, set(range(COUNT)))
        code = await asyncio.to_thread(supervisor.stop)
    assert set(by_id) == set(range(COUNT))  # 0 lost
    assert sum(len(who) - 1 for who in by_id.values()) == 0  # 0 duplicated
    shares = {who: sum(1 for members in by_id.values() if who in members) for who in (f"{clientid}-0", f"{clientid}-1")}
    print(f"\nworkers' shares of {COUNT} inputs: {shares}")
    assert all(shares.values()), shares  # the broker shared the work
    assert code == 0, supervisor.log


@pytest.mark.timeout(120)
async def test_an_input_matching_two_rules_is_answered_once_per_rule_with_two_workers(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    # Each shared subscription has its own turn among the workers: an input matching two of them
    # may go to both workers, and each would call both rules. One input that matches one filter
    # only puts the two turns out of step, so without a fix every later input would go to both.
    clientid = f"wk-{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path, {
        "workers": 2,
        "hub": {"address": mosquitto.address, "clientid": clientid},
        "rules": [{"subscribe": {"topic": f"{topic}/in/#", "qos": 1}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}/all/{{clientid}}", "qos": 1}},
                  {"subscribe": {"topic": f"{topic}/in/x", "qos": 1}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}/x/{{clientid}}", "qos": 1}}],
        "functions": [python_function("echo", "chaos", instance={"max": 2})],
    })
    async with Probe(mosquitto.port, [f"{topic}/all/+"]) as every, Probe(mosquitto.port, [f"{topic}/x/+"]) as xs:
        async with running(config) as supervisor:
            await publish_all(mosquitto.port, f"{topic}/in/other", inputs(range(1)))
            await publish_all(mosquitto.port, f"{topic}/in/x", inputs(range(1, 101)))
            by_all = await answers(every, set(range(101)))
            by_x = await answers(xs, set(range(1, 101)))
            code = await asyncio.to_thread(supervisor.stop)
    assert {n: len(who) for n, who in by_all.items()} == {n: 1 for n in range(101)}
    assert {n: len(who) for n, who in by_x.items()} == {n: 1 for n in range(1, 101)}
    assert code == 0, supervisor.log


@pytest.mark.timeout(120)
async def test_a_worker_that_dies_is_restarted_and_answers_the_inputs_queued_for_it(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    async with sharing(mosquitto, topic, tmp_path) as (clientid, probe, supervisor):
        line = await asyncio.to_thread(supervisor.wait_for_log, "worker 1 started (pid ")
        worker = int(line.rsplit("pid ", 1)[1].rstrip(")"))
        os.kill(worker, signal.SIGKILL)
        await wait_gone(worker)
        # Published while worker 1 is down: its share waits in its session (cleansession false).
        await publish_all(mosquitto.port, f"{topic}/in", inputs(range(200)))
        await asyncio.to_thread(supervisor.wait_for_log, "worker 1 was killed by signal 9; restarting it")
        by_id = await answers(probe, set(range(200)))
        code = await asyncio.to_thread(supervisor.stop)
    assert set(by_id) == set(range(200))
    assert any(f"{clientid}-1" in who for who in by_id.values())  # the restarted worker answered its share
    assert supervisor.log.count("worker 1 started (pid ") == 2
    assert code == 0, supervisor.log


@pytest.mark.timeout(60)
async def test_a_schedule_fires_once_not_once_per_worker(mosquitto: Mosquitto, topic: str, tmp_path: Path) -> None:
    clientid = f"wk-{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path, {
        "workers": 2,
        "hub": {"address": mosquitto.address, "clientid": clientid},
        "rules": [{"schedule": {"every": "200ms"}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}/tick/{{clientid}}", "qos": 1}}],
        "functions": [python_function("echo", "chaos", instance={"min": 1})],
    })
    ticks: list[str] = []
    async with Probe(mosquitto.port, [f"{topic}/tick/+"]) as probe:
        async with running(config) as supervisor:
            while len(ticks) < 5:
                ticks.append((await probe.next(timeout=5)).topic.value.rsplit("/", 1)[1])
            with contextlib.suppress(TimeoutError):  # a moment more, for a second worker's fires
                async with asyncio.timeout(LINGER):
                    while True:
                        ticks.append((await probe.next(timeout=5)).topic.value.rsplit("/", 1)[1])
            code = await asyncio.to_thread(supervisor.stop)
    assert len(ticks) >= 5 and set(ticks) == {f"{clientid}-0"}, ticks
    assert code == 0, supervisor.log


@pytest.mark.timeout(60)
async def test_one_worker_is_the_manager_itself_with_no_supervisor(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    config = workers_config(tmp_path, mosquitto, topic, f"wk-{uuid.uuid4().hex[:6]}", workers=1, min=1)
    with ManagerProcess(config) as manager:
        await asyncio.to_thread(manager.wait_ready)
        [runtime] = children(manager.process.pid)  # its warm instance, and no worker process
        assert "edgefn.runtimes" in Path(f"/proc/{runtime}/cmdline").read_text()
        assert await asyncio.to_thread(manager.stop) == 0
    assert "edgefn.workers" not in manager.log and "[w0]" not in manager.log


@pytest.mark.timeout(60)
async def test_edgefn_dev_runs_one_manager_whatever_workers_says(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    config = workers_config(tmp_path, mosquitto, topic, f"wk-{uuid.uuid4().hex[:6]}", workers=3)
    with ManagerProcess(config, command="dev") as manager:
        await asyncio.to_thread(manager.wait_ready)
        assert await asyncio.to_thread(manager.stop) == 0
    assert "workers: 3 is for edgefn run; edgefn dev runs one manager" in manager.log
    assert "edgefn.workers" not in manager.log


# -- stopping ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def warm(mosquitto: Mosquitto, topic: str, tmp_path: Path) -> AsyncIterator[tuple[ManagerProcess, set[int]]]:
    """Two workers with a warm runtime each: the supervisor, and every process under it."""
    config = workers_config(tmp_path, mosquitto, topic, f"wk-{uuid.uuid4().hex[:6]}", min=1)
    async with running(config) as supervisor:
        yield supervisor, descendants(supervisor.process.pid)


@pytest.mark.timeout(90)
async def test_sigterm_to_the_supervisor_stops_every_worker_cleanly_and_leaves_no_process(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    async with warm(mosquitto, topic, tmp_path) as (supervisor, processes):
        assert len(processes) >= 4, processes  # two workers, each with a warm runtime
        code = await asyncio.to_thread(supervisor.stop)
        for pid in processes:
            await wait_gone(pid)
    assert code == 0, supervisor.log
    assert supervisor.log.count("]: stopped") == 2  # each worker drained and stopped, then the supervisor
    assert supervisor.log.rstrip().endswith("edgefn.workers: stopped")


@pytest.mark.timeout(90)
async def test_workers_never_outlive_a_supervisor_killed_with_sigkill(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    async with warm(mosquitto, topic, tmp_path) as (supervisor, processes):
        supervisor.kill()
        for pid in processes:
            await wait_gone(pid, timeout=20)
    assert not any(alive(pid) for pid in processes)


@pytest.mark.timeout(60)
async def test_a_worker_that_fails_at_start_up_stops_the_supervisor_with_status_1(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # worker 0 cannot listen on metrics.address
        document = {
            "workers": 2,
            "hub": {"address": mosquitto.address, "clientid": f"wk-{uuid.uuid4().hex[:6]}"},
            "rules": [{"subscribe": {"topic": f"{topic}/in"}, "function": {"name": "echo"},
                       "publish": {"topic": f"{topic}/out"}}],
            "functions": [python_function("echo", "chaos")],
            "metrics": {"address": f"127.0.0.1:{taken.getsockname()[1]}"},
        }
        with ManagerProcess(write_config(tmp_path, document)) as supervisor:
            code = await asyncio.to_thread(supervisor.process.wait, 40)
    assert code == 1
    assert "during start-up: stopping the others" in supervisor.log
    assert "edgefn ready: 2 workers" not in supervisor.log  # (worker 1 alone may have been)


# -- each worker's config --------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> object:
    (tmp_path / "f").mkdir()
    (tmp_path / "edgefn.yml").write_text(textwrap.dedent("""\
        workers: 3
        hub: {address: tcp://127.0.0.1:1883, clientid: line}
        server: {address: 127.0.0.1:50051}
        metrics: {address: 127.0.0.1:9464}
        rules:
          - subscribe: {topic: a/+, qos: 1}
            function: {name: f}
            publish: {topic: b}
          - clientid: own
            subscribe: {topic: $share/mine/c/#}
            function: {name: f}
            publish: {topic: d}
          - schedule: {every: 1m}
            function: {name: f}
            publish: {topic: e}
        functions: [{name: f, runtime: python, handler: index.handler, codedir: f}]
    """))
    return load_config(tmp_path / "edgefn.yml", {})


def test_each_worker_has_its_own_clientids_and_shares_every_subscription(config) -> None:
    for index in range(3):
        worker = worker_config(config, index)
        assert worker.workers == 1
        assert worker.hub.clientid == f"line-{index}"
        subscribed = [(rule.clientid, rule.subscribe.topic) for rule in worker.rules if rule.subscribe]
        assert subscribed == [(None, "$share/line/a/+"), (f"own-{index}", "$share/mine/c/#")]


def test_only_worker_0_runs_schedules_and_the_grpc_server(config) -> None:
    first, second = worker_config(config, 0), worker_config(config, 1)
    assert [rule.index for rule in first.rules] == [0, 1, 2]
    assert [rule.index for rule in second.rules] == [0, 1]
    assert first.server == ServerConfig("127.0.0.1:50051") and second.server is None


def test_worker_n_serves_metrics_on_the_configured_port_plus_n(config) -> None:
    assert [worker_config(config, index).metrics.port for index in range(3)] == [9464, 9465, 9466]
    any_port = replace(config, metrics=MetricsConfig("127.0.0.1", 0))
    assert worker_config(any_port, 2).metrics.port == 0


def test_a_share_name_is_one_topic_level() -> None:
    assert shared_filter("t/#", "plant/line+1#") == "$share/plant_line_1_/t/#"
    assert shared_filter("$queue/t", "x") == "$queue/t"


# -- config -------------------------------------------------------------------------------------------


def load(folder: Path, top: str, hub: str = "{address: tcp://127.0.0.1:1883}") -> object:
    (folder / "f").mkdir(exist_ok=True)
    path = folder / "edgefn.yml"
    path.write_text(f"{top}\nhub: {hub}\nfunctions: [{{name: f, runtime: python, handler: index.handler, "
                    "codedir: f}]\n")
    return load_config(path, {})


def test_workers_defaults_to_one_manager(tmp_path: Path) -> None:
    assert load(tmp_path, "").workers == 1


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "true", "two", "65", "[2]"])
def test_workers_must_be_a_whole_number_from_1_to_64(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"workers: {value}")
    [problem] = caught.value.problems
    assert problem.path == "workers" and problem.line == 1, problem


def test_workers_need_a_broker_with_shared_subscriptions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "workers: 2", hub="{clientid: x}")
    [problem] = caught.value.problems
    assert problem.path == "workers" and "set hub.address" in problem.message


RULE = "rules: [{subscribe: {topic: t}, function: {name: f}, publish: {topic: o}}]"


def test_workers_warn_when_presence_topics_would_collide(tmp_path: Path) -> None:
    config = load(tmp_path, f"workers: 2\n{RULE}", hub="{address: tcp://127.0.0.1:1883, status: {topic: edge/s}}")
    [warning] = config.warnings
    assert warning.path == "workers" and "{clientid}" in warning.message


def test_workers_warn_when_no_rule_subscribes(tmp_path: Path) -> None:
    [warning] = load(tmp_path, "workers: 3").warnings
    assert warning.path == "workers" and "workers 1 to 2 have nothing to do" in warning.message
