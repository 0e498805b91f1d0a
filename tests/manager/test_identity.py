"""instance.user / instance.group: a function's instances run as another user (the manager as root).

The integration test runs a node function as ``nobody`` (uid 65534): node lives
in /usr/bin, where any user may run it, while this machine's Python may sit in
a folder closed to other users (a case ``edgefn check`` reports, tested below).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import uuid
from pathlib import Path

import orjson
import pytest

from edgefn.manager import identity
from edgefn.manager.config import ConfigError, FunctionConfig, InstanceConfig, load_config
from edgefn.manager.identity import Identity, IdentityError, closed_to
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool
from edgefn.manager.runners import RunnerTable, check_function
from support.broker import Mosquitto
from support.manager import FUNCTIONS, ManagerProcess, write_config
from support.mqtt import Probe

NOBODY = 65534
RUN_AS = FUNCTIONS / "run_as"


def config_with(folder: Path, broker: Mosquitto, topic: str, instance: dict) -> Path:
    return write_config(folder, {
        "hub": {"address": broker.address, "clientid": f"identity-{uuid.uuid4().hex[:6]}"},
        "rules": [{"subscribe": {"topic": f"{topic}/in", "qos": 1}, "function": {"name": "whoami"},
                   "publish": {"topic": f"{topic}/out", "qos": 1}}],
        "functions": [{"name": "whoami", "runtime": "node", "handler": "index.handler",
                       "codedir": str(RUN_AS), "instance": instance}],
    })


def test_names_and_numeric_ids_resolve_at_load(tmp_path: Path, mosquitto: Mosquitto) -> None:
    by_name = load_config(config_with(tmp_path, mosquitto, "t", {"user": "nobody"}))
    by_number = load_config(config_with(tmp_path, mosquitto, "t", {"user": NOBODY, "group": 0}))
    group_only = load_config(config_with(tmp_path, mosquitto, "t", {"group": "nogroup"}))
    assert by_name.functions[0].instance.identity == Identity(NOBODY, NOBODY, "/nonexistent", "nobody")
    assert by_number.functions[0].instance.identity == Identity(NOBODY, 0, "/nonexistent", "65534:0")
    assert (group_only.functions[0].instance.identity.uid, group_only.functions[0].instance.identity.gid) == (
        os.geteuid(), NOBODY)


def test_a_user_or_group_that_does_not_exist_is_a_config_error(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_with(tmp_path, mosquitto, "t", {"user": "no-such-user-here", "group": 4_000_000}))
    message = str(caught.value)
    assert "functions[0].instance.user: no user 'no-such-user-here' on this machine" in message
    assert "functions[0].instance.group: no gid '4000000' on this machine" in message


def test_a_manager_that_is_not_root_refuses_to_start_another_users_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity.os, "geteuid", lambda: 1000)
    who = Identity(NOBODY, NOBODY, "/nonexistent", "nobody")
    lines = identity.problems("whoami", who, RUN_AS, "/usr/bin/node")
    assert lines == ["function whoami: instance.user/group 'nobody' needs the manager to run as root (it runs as uid 1000)"]
    with pytest.raises(IdentityError, match="needs the manager to run as root"):
        identity.require(lines)


def test_code_or_runtime_in_a_folder_closed_to_the_user_is_reported(socket_dir: Path) -> None:
    socket_dir.chmod(0o755)  # /tmp/ef-*: reachable, but its "private" folder is not
    closed = socket_dir / "private"
    (closed / "code").mkdir(parents=True)
    closed.chmod(0o700)
    who = Identity(NOBODY, NOBODY, "/nonexistent", "nobody")
    assert closed_to(who, closed / "code", os.R_OK | os.X_OK) == f"{closed} is closed to it (mode drwx------)"
    lines = identity.problems("whoami", who, closed / "code", "/usr/bin/node")
    assert lines == [f"function whoami: its codedir {closed / 'code'} is not readable by 'nobody': "
                     f"{closed} is closed to it (mode drwx------)"]
    assert closed_to(who, RUN_AS, os.R_OK | os.X_OK) is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["run", "dev"])  # dev runs instances from a snapshot of the code
async def test_instances_run_as_nobody_cannot_read_the_manager_and_talk_over_their_own_socket_folder(
    mosquitto: Mosquitto, topic: str, tmp_path: Path, command: str
) -> None:
    assert os.geteuid() == 0, "this test runs as root, like CI"
    config = config_with(tmp_path, mosquitto, topic, {"user": "nobody"})
    async with Probe(mosquitto.port, [f"{topic}/out"]) as probe:
        with ManagerProcess(config, command=command, env={"EDGEFN_TEST_SECRET": "do-not-leak"}) as manager:
            await asyncio.to_thread(manager.wait_ready)
            await probe.publish(f"{topic}/in", b"{}")
            seen = orjson.loads((await probe.next(timeout=20)).payload)
            folder = Path(seen["address"].removeprefix("unix:")).parent
            own, parent = folder.stat(), folder.parent.stat()
            assert manager.stop() == 0, manager.log
    assert (seen["uid"], seen["gid"], seen["groups"]) == (NOBODY, NOBODY, [NOBODY]), seen
    assert seen["home"] == "/nonexistent"
    assert seen["managerEnviron"] == "EACCES"
    # Its sockets live in a folder of its own: its user's, 0700, in the manager's folder,
    # which others may traverse (0711) but neither list nor change.
    assert (own.st_uid, stat.S_IMODE(own.st_mode)) == (NOBODY, 0o700)
    assert (parent.st_uid, stat.S_IMODE(parent.st_mode)) == (0, 0o711)
    assert not folder.exists()  # removed with the pool


def node_config(codedir: Path, **instance: object) -> FunctionConfig:
    return FunctionConfig("whoami", "node", "index.handler", codedir,
                          instance=InstanceConfig(identity=Identity(NOBODY, NOBODY, "/nonexistent", "nobody"), **instance))


async def test_the_start_fails_with_one_clear_error_when_the_manager_is_not_root(
    socket_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identity.os, "geteuid", lambda: 1000)
    table = RunnerTable(socket_dir=socket_dir, metrics=Metrics(), grace=1.0)
    with pytest.raises(IdentityError, match="^function whoami: instance.user/group 'nobody' needs the manager to run as root"):
        await table.build_all([node_config(RUN_AS)])
    pool = table["whoami"]
    assert isinstance(pool, Pool) and pool.instances == ()  # no instance started
    await table.stop()


async def test_check_loads_the_handler_as_the_user_and_reports_code_it_cannot_read(socket_dir: Path) -> None:
    socket_dir.chmod(0o755)
    closed = socket_dir / "private"
    shutil.copytree(RUN_AS, closed / "code")
    closed.chmod(0o700)
    assert await check_function(node_config(RUN_AS), socket_dir) is None  # loads as nobody
    problem = await check_function(node_config(closed / "code"), socket_dir)
    assert problem is not None and problem.error_type == "Runtime.Unavailable"
    assert "its codedir" in problem.message and "is not readable by 'nobody'" in problem.message
