"""``edgefn dev``: hot reload of code and config (issue #6), with a real manager on a real mosquitto.

Each test edits its own copy of the fixture function on disk as an editor would, and polls for
the new version's answer with a deadline; nothing sleeps to "let the reload happen".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import grpc
import grpc.aio
import orjson
import pytest

from support.broker import Mosquitto
from support.manager import FUNCTIONS, ManagerProcess, write_config
from support.mqtt import Probe

from edgefn.wire import function_pb2, function_pb2_grpc

pytestmark = pytest.mark.timeout(90)

Result = dict[str, object]


def copy_fixture(folder: Path, name: str = "fn") -> Path:
    """A private copy of ``tests/functions/reload_version``: tests edit copies, never the fixture."""
    shutil.copytree(FUNCTIONS / "reload_version", folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    return folder / name


def source(version: int, extra: str = "") -> str:
    """The fixture's index.py with ``VERSION = version``, and ``extra`` appended."""
    text = (FUNCTIONS / "reload_version" / "index.py").read_text()
    return re.sub(r"^VERSION = .*$", f"VERSION = {version}", text, flags=re.M) + extra


def save(codedir: Path, version: int, *, extra: str = "") -> None:
    """Save index.py in place (open, truncate, write), as a plain ``>`` or many editors do."""
    (codedir / "index.py").write_text(source(version, extra))


def save_by_rename(codedir: Path, version: int) -> None:
    """Save as vim/VS Code/JetBrains do: write a hidden temp file, then rename it over the original."""
    temp = codedir / ".index.py.edgefn-save"
    temp.write_text(source(version))
    os.replace(temp, codedir / "index.py")


def function(name: str, codedir: Path, **extra: object) -> dict:
    return {"name": name, "runtime": "python", "handler": "index.handler", "codedir": str(codedir), **extra}


def rule(topic: str, name: str, **extra: object) -> dict:
    """A QoS 1 rule: ``<topic>/<name>/in`` → function ``name`` → ``<topic>/<name>/out``."""
    return {
        "subscribe": {"topic": f"{topic}/{name}/in", "qos": 1},
        "function": {"name": name},
        "publish": {"topic": f"{topic}/{name}/out", "qos": 1},
        **extra,
    }


def hub(broker: Mosquitto) -> dict:
    return {"address": broker.address, "clientid": f"reload-{uuid.uuid4().hex[:6]}"}


@dataclass
class Dev:
    """A running ``edgefn dev`` and the files it watches."""

    folder: Path
    config: Path
    manager: ManagerProcess
    port: int

    def reloads(self) -> int:
        """How many reloads the manager has applied so far."""
        return sum(1 for line in list(self.manager.lines) if "edgefn.manager: reloaded " in line)

    def rewrite(self, document: dict) -> None:
        write_config(self.folder, document, self.config.name)


Start = Callable[[dict], Awaitable[Dev]]


@pytest.fixture
def dev_factory(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Start]:
    """Start ``edgefn dev`` on a document once its watcher runs; it must stop cleanly (exit 0) after the test."""
    started: list[ManagerProcess] = []

    def start_blocking(document: dict) -> Dev:
        manager = ManagerProcess(write_config(tmp_path, document), command="dev")
        started.append(manager)
        manager.wait_ready(60)
        manager.wait_for_log("edgefn.reload: watching")
        time.sleep(0.2)  # "watching" is logged just before the inotify watches exist; nothing marks that
        return Dev(tmp_path, manager.config, manager, mosquitto.port)

    async def start(document: dict) -> Dev:
        return await asyncio.to_thread(start_blocking, document)

    yield start
    for manager in started:
        assert manager.stop() == 0, manager.log


async def ask(dev: Dev, probe: Probe, topic: str, want: Callable[[Result], bool], timeout: float = 20.0) -> Result:
    """Send a request every 100 ms until an answer on ``topic/out`` satisfies ``want``; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    number = 0
    while loop.time() < deadline:
        number += 1
        await probe.publish(f"{topic}/in", orjson.dumps({"n": f"ask-{number}"}), qos=1)
        try:
            while True:
                message = await probe.next(timeout=0.1)
                result = orjson.loads(message.payload)
                if message.topic.matches(f"{topic}/out") and want(result):
                    return result
        except TimeoutError:
            continue
    raise AssertionError(f"no answer on {topic}/out satisfied the predicate in {timeout}s:\n{dev.manager.log}")


async def answers(probe: Probe, numbers: set[int], timeout: float = 30.0) -> dict[int, Result]:
    """The answers to the requests numbered ``numbers`` (ignoring stray answers to ``ask``'s polls)."""
    found: dict[int, Result] = {}
    async with asyncio.timeout(timeout):
        while found.keys() != numbers:
            result = orjson.loads((await probe.next(timeout=timeout)).payload)
            if result.get("n") in numbers:
                found[int(result["n"])] = result  # type: ignore[call-overload]
    return found


async def wait_file(path: Path) -> None:
    """Until the fixture handler wrote ``path``: its call is in flight."""
    async with asyncio.timeout(20):
        while not path.exists():
            await asyncio.sleep(0.02)


def version(number: int) -> Callable[[Result], bool]:
    return lambda result: result.get("version") == number


async def wait_log(dev: Dev, text: str, timeout: float = 20.0) -> str:
    return await asyncio.to_thread(dev.manager.wait_for_log, text, timeout)


# -- code changes ----------------------------------------------------------------


async def test_editor_save_by_rename_is_served_at_once_while_a_call_in_flight_finishes_on_the_old_code(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = copy_fixture(tmp_path)
    dev = await dev_factory({"hub": hub(mosquitto), "rules": [rule(topic, "v")], "functions": [function("v", code)]})
    marker = tmp_path / "in-flight"
    async with Probe(dev.port, [f"{topic}/v/out"]) as probe:
        await probe.publish(f"{topic}/v/in", orjson.dumps({"n": 900, "sleep": 5.0, "touch": str(marker)}), qos=1)
        await wait_file(marker)
        save_by_rename(code, 2)
        await ask(dev, probe, f"{topic}/v", version(2), timeout=4)  # not behind the old instance's slow call
        assert (await answers(probe, {900}))[900]["version"] == 1
        save_by_rename(code, 3)  # the renamed-over file is watched too, not only the first one
        await ask(dev, probe, f"{topic}/v", version(3))


# Dotfiles, vim's swap, backup and probe (4913) files, bytecode, and node_modules' churn.
IGNORED = (".hidden", ".index.py.swp", "index.py.swx", "index.py~", "4913", "__pycache__/index.cpython-311.pyc",
           "index.pyc", "node_modules/dep/index.js")


async def test_dotfiles_swap_files_bytecode_and_node_modules_trigger_no_reload(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = copy_fixture(tmp_path)
    (code / "node_modules" / "dep").mkdir(parents=True)
    dev = await dev_factory({
        "hub": hub(mosquitto), "rules": [rule(topic, "v")], "functions": [function("v", code)],
        # A log file beside the config changes with every line: it must not feed the reloader.
        "logger": {"level": "debug", "path": str(tmp_path / "edgefn.log")},
    })
    async with Probe(dev.port, [f"{topic}/v/out"]) as probe:
        save(code, 2)  # a real change first: the watcher demonstrably works
        before = await ask(dev, probe, f"{topic}/v", version(2))
        assert dev.reloads() == 1
        for path in IGNORED:
            (code / path).parent.mkdir(exist_ok=True)
            (code / path).write_text("ignored")
        (dev.folder / ".edgefn.yml.swp").write_text("the config's swap file")
        # Long enough for an unfiltered batch (50 ms debounce) to be reloaded and logged.
        await asyncio.sleep(1.0)
        after = await ask(dev, probe, f"{topic}/v", version(2))
        save(code, 3)  # and the watcher still works: exactly one more reload
        await ask(dev, probe, f"{topic}/v", version(3))
    assert after["pid"] == before["pid"], "an ignored file restarted the function"
    assert dev.reloads() == 2, dev.manager.log
    assert sum("edgefn.reload: changed: " in line for line in dev.manager.lines) == 2, dev.manager.log


@pytest.mark.parametrize(("broken", "error_type"), [
    ("\ndef oops(:\n    pass\n", "Runtime.UserCodeSyntaxError"),
    ("\nimport edgefn_no_such_module_here\n", "Runtime.ImportModuleError"),
], ids=["syntax-error", "import-error"])
async def test_broken_code_keeps_the_last_good_version_serving_even_in_new_instances(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str, broken: str, error_type: str
) -> None:
    code = copy_fixture(tmp_path)
    line = len((code / "index.py").read_text().splitlines()) + 2  # after a blank line
    dev = await dev_factory({"hub": hub(mosquitto), "rules": [rule(topic, "v")], "logger": {"level": "debug"},
                             "functions": [function("v", code, instance={"max": 2, "concurrency": 1})]})
    async with Probe(dev.port, [f"{topic}/v/out"]) as probe:
        await probe.publish(f"{topic}/v/in", orjson.dumps({"n": 100}), qos=1)  # one call: one instance
        first = (await answers(probe, {100}))[100]
        save(code, 2, extra=broken)
        error = await wait_log(dev, "reload failed")
        await wait_log(dev, f"line {line}")  # each line of the problem is a record of its own
        detail = dev.manager.log[dev.manager.log.index(error):]
        assert error_type in detail and "index.py" in detail and f"line {line}" in detail, dev.manager.log

        # Two slow calls at once: the second needs a new instance, started after the break.
        for number in (101, 102):
            await probe.publish(f"{topic}/v/in", orjson.dumps({"n": number, "sleep": 1.0}), qos=1)
        results = list((await answers(probe, {101, 102})).values())
        assert {r["version"] for r in results} == {1}
        assert {r["pid"] for r in results} > {first["pid"]}, "the second call should have scaled the pool up"

        # Crash replacement: SIGKILL every instance; the replacement runs the last good code too.
        for pid in {r["pid"] for r in results}:
            os.kill(int(pid), signal.SIGKILL)  # type: ignore[call-overload]
        known = {first["pid"], *(r["pid"] for r in results)}
        assert (await ask(dev, probe, f"{topic}/v", lambda r: r["pid"] not in known))["version"] == 1

        save(code, 3)  # fixed: the new version serves
        await ask(dev, probe, f"{topic}/v", version(3))
    assert dev.reloads() == 1, dev.manager.log


def cwd(answer: Result) -> Path:
    """The folder the instance that gave ``answer`` runs in."""
    return Path(os.readlink(f"/proc/{answer['pid']}/cwd"))


async def test_code_change_is_served_by_new_instances_of_the_same_manager_from_a_snapshot(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = copy_fixture(tmp_path)
    dev = await dev_factory({"hub": hub(mosquitto), "rules": [rule(topic, "v")], "functions": [function("v", code)],
                             "shutdown": {"timeout": "0.5s"}})
    manager_pid = dev.manager.process.pid
    async with Probe(dev.port, [f"{topic}/v/out"]) as probe:
        first = await ask(dev, probe, f"{topic}/v", version(1))
        snapshots = [cwd(first)]
        save(code, 2)
        second = await ask(dev, probe, f"{topic}/v", version(2))
        snapshots.append(cwd(second))
        assert second["pid"] != first["pid"], "a code change must start new instances"
        assert dev.manager.process.pid == manager_pid and dev.manager.process.poll() is None
        await asyncio.sleep(0.5 + 2.0 + 0.2)  # shutdown.timeout + the reloader's margin: the first copy is stale
        save(code, 3)
        await ask(dev, probe, f"{topic}/v", version(3))
        await wait_log(dev, "functions restarted: v")
    assert dev.reloads() == 2, dev.manager.log
    assert snapshots[0].parent == snapshots[1].parent != code.parent, "instances run from snapshots"
    assert not snapshots[0].exists() and snapshots[1].is_dir(), "replaced snapshots are deleted once unused"
    assert not (code / "__pycache__").exists(), "instances must not write bytecode into the user's folder"


async def test_qos1_stream_through_a_code_reload_loses_nothing(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = copy_fixture(tmp_path)
    dev = await dev_factory({"hub": hub(mosquitto), "rules": [rule(topic, "v")], "functions": [function("v", code)]})
    count, interval = 400, 0.005
    async with Probe(dev.port, [f"{topic}/v/out"]) as probe:
        await ask(dev, probe, f"{topic}/v", version(1))  # warm: the stream measures the reload, not a cold start
        for number in range(count):
            if number == count // 4:
                save(code, 2)
            await probe.publish(f"{topic}/v/in", orjson.dumps({"n": number, "stream": True}), qos=1)
            await asyncio.sleep(interval)
        seen = await answers(probe, set(range(count)), timeout=60)
    versions = [seen[n]["version"] for n in range(count)]
    assert versions[0] == 1 and versions[-1] == 2, versions
    assert dev.reloads() == 1, dev.manager.log


def grpc_address(dev: Dev) -> str:
    return dev.manager.wait_for_log("gRPC server listening on ").split(" listening on ", 1)[1].split()[0]


async def call_grpc(address: str, name: str) -> Result:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = function_pb2_grpc.FunctionStub(channel)
        reply = await stub.Call(function_pb2.FunctionMessage(FunctionName=name, Payload=b"{}"), timeout=10)
    return orjson.loads(reply.Payload)


async def test_grpc_server_answers_the_new_code_after_a_reload(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = copy_fixture(tmp_path)
    dev = await dev_factory({"hub": hub(mosquitto), "server": {"address": "127.0.0.1:0"},
                             "rules": [rule(topic, "v")], "functions": [function("v", code)]})
    address = grpc_address(dev)
    assert (await call_grpc(address, "v"))["version"] == 1
    save(code, 2)
    async with asyncio.timeout(20):
        while (await call_grpc(address, "v"))["version"] != 2:
            await asyncio.sleep(0.05)
    cli = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "edgefn", "call", "v", "--address", address, "--data", '{"n": 7}'],
        capture_output=True, timeout=30,
    )
    assert cli.returncode == 0, cli.stderr.decode()
    assert orjson.loads(cli.stdout)["version"] == 2 and orjson.loads(cli.stdout)["n"] == 7


# -- config changes ------------------------------------------------------------------


def watched(tmp_path: Path, *names: str) -> dict[str, Path]:
    """One copy of the fixture per function name (each function its own codedir)."""
    return {name: copy_fixture(tmp_path, name) for name in names}


@pytest.mark.parametrize("connection", ["shared", "own"])
async def test_config_change_adds_and_removes_rules_and_a_removed_rule_finishes_its_call(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str, connection: str
) -> None:
    code = watched(tmp_path, "keep", "gone", "added")
    own = {"clientid": f"gone-{uuid.uuid4().hex[:6]}"} if connection == "own" else {}
    document = {"hub": hub(mosquitto), "rules": [rule(topic, "keep"), rule(topic, "gone", **own)],
                "functions": [function("keep", code["keep"]), function("gone", code["gone"])],
                "shutdown": {"timeout": "20s"}, "logger": {"level": "debug"}}
    dev = await dev_factory(document)
    outputs = [f"{topic}/{name}/out" for name in ("keep", "gone", "added")]
    async with Probe(dev.port, outputs) as probe:
        kept = await ask(dev, probe, f"{topic}/keep", version(1))
        marker = tmp_path / "in-flight"
        await probe.publish(f"{topic}/gone/in", orjson.dumps({"n": 500, "sleep": 2.0, "touch": str(marker)}), qos=1)
        await wait_file(marker)
        dev.rewrite({**document, "rules": [rule(topic, "keep"), rule(topic, "added")],
                     "functions": [function("keep", code["keep"]), function("added", code["added"])]})
        # Deliveries racing the unsubscribe must be answered or dropped, never stuck unacknowledged.
        for number in range(600, 620):
            await probe.publish(f"{topic}/gone/in", orjson.dumps({"n": number}), qos=1)
        await wait_log(dev, "reloaded edgefn.yml: rules +1 -1")
        finished = await answers(probe, {500})
        assert finished[500]["version"] == 1, "the removed rule's call in flight must finish"
        await ask(dev, probe, f"{topic}/added", version(1))
        assert (await ask(dev, probe, f"{topic}/keep", version(1)))["pid"] == kept["pid"], dev.manager.log
        while True:  # let stragglers of the racing deliveries arrive before asserting silence
            try:
                await probe.next(timeout=1.0)
            except TimeoutError:
                break
        await probe.publish(f"{topic}/gone/in", orjson.dumps({"n": 700}), qos=1)
        await probe.nothing(within=1.5)
    assert "delivery failed" not in dev.manager.log, dev.manager.log


async def test_invalid_config_keeps_the_old_config_and_logs_every_problem_with_its_path(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = watched(tmp_path, "keep")
    document = {"hub": hub(mosquitto), "rules": [rule(topic, "keep")], "functions": [function("keep", code["keep"])]}
    dev = await dev_factory(document)
    async with Probe(dev.port, [f"{topic}/keep/out", f"{topic}/other/out"]) as probe:
        kept = await ask(dev, probe, f"{topic}/keep", version(1))
        bad = {**document, "rules": [rule(topic, "keep"), rule(topic, "other")],
               "functions": [function("keep", code["keep"], instanse={"max": 2})]}
        dev.rewrite(bad)
        await wait_log(dev, "has 2 problem(s); the running config stays")
        await wait_log(dev, "no function named 'other'")  # each problem is a record of its own
        await wait_log(dev, "instanse: unknown key")
        assert re.search(r"edgefn\.yml:\d+: functions\[0\]\.instanse: unknown key", dev.manager.log), dev.manager.log
        assert re.search(r"edgefn\.yml:\d+: rules\[1\]\.function\.name: no function named 'other'", dev.manager.log)
        dev.config.write_text("rules: [\n")  # not even YAML
        await wait_log(dev, "has 1 problem(s); the running config stays")
        assert (await ask(dev, probe, f"{topic}/keep", version(1)))["pid"] == kept["pid"]
        assert dev.reloads() == 0
        dev.rewrite({**document, "rules": [rule(topic, "keep"), rule(topic, "other")],
                     "functions": [function("keep", code["keep"]), function("other", code["keep"])]})
        await ask(dev, probe, f"{topic}/other", version(1))  # a good config applies at once
        await wait_log(dev, "reloaded edgefn.yml")
    assert dev.reloads() == 1, dev.manager.log


async def test_untouched_rule_answers_every_message_through_a_config_change(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = watched(tmp_path, "keep", "other")
    document = {"hub": hub(mosquitto), "rules": [rule(topic, "keep"), rule(topic, "other")],
                "functions": [function("keep", code["keep"]), function("other", code["other"], env={"MARK": "a"})]}
    dev = await dev_factory(document)
    count = 200
    async with Probe(dev.port, [f"{topic}/keep/out"]) as probe:
        await ask(dev, probe, f"{topic}/keep", version(1))
        for number in range(count):
            if number == count // 4:
                added = rule(topic, "added", function={"name": "other"})
                dev.rewrite({**document, "rules": [*document["rules"], added],
                             "functions": [function("keep", code["keep"]),
                                           function("other", code["other"], env={"MARK": "b"})]})
            await probe.publish(f"{topic}/keep/in", orjson.dumps({"n": number}), qos=1)
            await asyncio.sleep(0.01)
        seen = await answers(probe, set(range(count)))
        await wait_log(dev, "functions restarted: other")
    assert len({result["pid"] for result in seen.values()}) == 1, "the untouched rule's function restarted"
    assert dev.reloads() == 1, dev.manager.log


@pytest.mark.parametrize("hub_too", [False, True], ids=["rules", "rules-and-hub"])
async def test_a_kept_rule_misses_nothing_when_the_filter_that_covered_its_own_goes(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str, hub_too: bool
) -> None:
    # +/in covers keep/in: one subscription for both. Removing the broad rule moves the kept rule
    # to a subscription of its own; in between, the broker must never be left with neither, or what
    # is published then is dropped. A publisher in bursts of 10 finds a gap of a round trip. With a
    # hub change as well, the connection goes down and up: its persistent session must already
    # hold the new subscription, so that the broker queues for it meanwhile.
    code = watched(tmp_path, "keep", "broad")
    broad = {"subscribe": {"topic": f"{topic}/+/in", "qos": 1}, "function": {"name": "broad"},
             "publish": {"topic": f"{topic}/broad/out", "qos": 1}}
    document = {"hub": hub(mosquitto), "rules": [broad, rule(topic, "keep")],
                "functions": [function("keep", code["keep"]), function("broad", code["broad"])]}
    dev = await dev_factory(document)
    async with Probe(dev.port, [f"{topic}/keep/out"]) as probe:
        await ask(dev, probe, f"{topic}/keep", version(1))
        sent = 0

        async def burst() -> None:
            nonlocal sent
            await asyncio.gather(*(probe.publish(f"{topic}/keep/in", orjson.dumps({"n": sent + index}), qos=1)
                                   for index in range(10)))
            sent += 10

        while sent < 200:
            await burst()
        changed_hub = {**document["hub"], "keepalive": "30s"} if hub_too else document["hub"]
        dev.rewrite({**document, "hub": changed_hub, "rules": [rule(topic, "keep")]})
        reloaded = asyncio.ensure_future(wait_log(dev, "reloaded edgefn.yml"))
        while not reloaded.done():
            await burst()
        await reloaded
        for _ in range(20):
            await burst()
        seen = await answers(probe, set(range(sent)))
    assert len(seen) == sent
    assert f"overlap: subscribed as one, '{topic}/+/in'" in dev.manager.log
    assert "matches no rule" not in dev.manager.log
    assert ("hub reconnected" in dev.manager.log) is hub_too


async def test_env_server_and_hub_changes_restart_what_they_touch(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = watched(tmp_path, "v")
    document = {"hub": hub(mosquitto), "server": {"address": "127.0.0.1:0"}, "rules": [rule(topic, "v")],
                "functions": [function("v", code["v"], env={"MARK": "a"})]}
    dev = await dev_factory(document)
    address = grpc_address(dev)
    async with Probe(dev.port, [f"{topic}/v/out"]) as probe:
        first = await ask(dev, probe, f"{topic}/v", lambda r: r["mark"] == "a")
        document = {**document, "functions": [function("v", code["v"], env={"MARK": "b"})]}
        dev.rewrite(document)
        second = await ask(dev, probe, f"{topic}/v", lambda r: r["mark"] == "b")
        assert second["pid"] != first["pid"]

        socket = tmp_path / "s.sock"
        document = {**document, "server": {"address": f"unix://{socket}"}}
        dev.rewrite(document)
        await wait_log(dev, f"gRPC server listening on unix://{socket}")
        assert (await call_grpc(f"unix://{socket}", "v"))["mark"] == "b"
        with pytest.raises(grpc.aio.AioRpcError):
            await call_grpc(address, "v")  # the old address is closed

        dev.rewrite({**document, "hub": {**document["hub"], "clientid": f"reload-{uuid.uuid4().hex[:6]}"}})
        await wait_log(dev, "hub reconnected")
        third = await ask(dev, probe, f"{topic}/v", lambda r: r["mark"] == "b")
        assert third["pid"] == second["pid"], "a hub change reconnects rules, it does not restart functions"
    assert dev.reloads() == 3, dev.manager.log


async def test_a_codedir_that_vanishes_keeps_the_last_good_version_serving(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str
) -> None:
    code = copy_fixture(tmp_path)
    dev = await dev_factory({"hub": hub(mosquitto), "rules": [rule(topic, "v")], "functions": [function("v", code)]})
    async with Probe(dev.port, [f"{topic}/v/out"]) as probe:
        first = await ask(dev, probe, f"{topic}/v", version(1))
        shutil.rmtree(code)  # a branch switch, a mistaken rm -r
        await wait_log(dev, "cannot snapshot")
        assert (await ask(dev, probe, f"{topic}/v", version(1)))["pid"] == first["pid"]
        shutil.copytree(FUNCTIONS / "reload_version", code, ignore=shutil.ignore_patterns("__pycache__"))
        save(code, 2)
        await ask(dev, probe, f"{topic}/v", version(2))


@pytest.mark.parametrize("hub_change", [False, True], ids=["rules-only", "with-hub-change"])
async def test_a_removed_rule_leaves_no_subscription_in_the_persistent_session(
    dev_factory: Start, mosquitto: Mosquitto, tmp_path: Path, topic: str, hub_change: bool
) -> None:
    code = watched(tmp_path, "keep", "gone")
    document = {"hub": {**hub(mosquitto), "cleansession": False}, "rules": [rule(topic, "keep"), rule(topic, "gone")],
                "functions": [function("keep", code["keep"]), function("gone", code["gone"])]}
    dev = await dev_factory(document)
    changed = {**document, "rules": [rule(topic, "keep")], "functions": [function("keep", code["keep"])]}
    if hub_change:
        changed["hub"] = {**document["hub"], "keepalive": "30s"}
    dev.rewrite(changed)
    await wait_log(dev, "reloaded edgefn.yml: rules +0 -1")
    assert await asyncio.to_thread(dev.manager.stop) == 0, dev.manager.log
    # The session outlives the manager: whatever it is still subscribed to is queued for it.
    async with Probe(dev.port) as probe:
        await probe.publish(f"{topic}/gone/in", b'"stale"', qos=1)
        await probe.publish(f"{topic}/keep/in", b'"kept"', qos=1)
    session = aiomqtt.Client("127.0.0.1", dev.port, identifier=document["hub"]["clientid"], clean_session=False)
    async with session:
        received = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                async for message in session.messages:
                    received.append(str(message.topic))
    assert received == [f"{topic}/keep/in"]
