"""systemd's notify protocol, against a fake NOTIFY_SOCKET (a datagram socket we bind)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefn.manager.notify import Notifier
from support.broker import free_port
from support.manager import ManagerProcess, python_function, write_config


@pytest.fixture
def systemd(socket_dir: Path) -> Iterator[socket.socket]:
    """The fake systemd end: a bound unix datagram socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(socket_dir / "notify"))
        sock.settimeout(20)
        yield sock


def test_a_message_is_one_datagram_on_the_notify_socket(systemd: socket.socket) -> None:
    Notifier({"NOTIFY_SOCKET": systemd.getsockname()}).send("READY=1\nSTATUS=ready")
    assert systemd.recv(4096) == b"READY=1\nSTATUS=ready"


def test_an_abstract_socket_is_written_with_an_at_sign() -> None:
    name = f"edgefn-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier({"NOTIFY_SOCKET": "@" + name}).send("STOPPING=1")
        assert sock.recv(4096) == b"STOPPING=1"


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.send("READY=1")


def test_a_missing_socket_is_logged_once_never_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    notifier.send("READY=1")
    notifier.send("WATCHDOG=1")
    assert sum("NOTIFY_SOCKET" in record.getMessage() for record in caplog.records) == 1


def test_the_watchdog_interval_is_for_this_process_only() -> None:
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}).watchdog == 30.0
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}).watchdog
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog is None
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "0"}).watchdog is None


async def test_keep_alive_pings_at_half_the_watchdog_interval(systemd: socket.socket) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": systemd.getsockname(), "WATCHDOG_USEC": "200000"})
    systemd.setblocking(False)
    pinging = asyncio.create_task(notifier.keep_alive(), name="watchdog")
    try:
        await asyncio.sleep(0.35)  # pings at 0, 0.1, 0.2, 0.3
    finally:
        pinging.cancel()
        await asyncio.gather(pinging, return_exceptions=True)
    pings = []
    while True:
        try:
            pings.append(systemd.recv(64))
        except BlockingIOError:
            break
    assert pings and set(pings) == {b"WATCHDOG=1"} and 3 <= len(pings) <= 5


def test_the_manager_says_ready_pings_the_watchdog_and_says_stopping(tmp_path: Path, systemd: socket.socket) -> None:
    path = write_config(tmp_path, {"hub": {"embedded": {"port": free_port()}},
                                   "functions": [python_function("hi", "e2e", "index.echo", instance={"min": 1})]})
    env = {"NOTIFY_SOCKET": systemd.getsockname(), "WATCHDOG_USEC": "400000"}
    with ManagerProcess(path, env=env) as manager:
        manager.wait_ready(30)
        received = []
        while b"READY=1\nSTATUS=ready" not in received:
            received.append(systemd.recv(4096))
        assert b"WATCHDOG=1" in received  # from the start: starting may be slow, and systemd is waiting
        assert systemd.recv(4096) == b"WATCHDOG=1"
        assert manager.stop() == 0
    while (message := systemd.recv(4096)) == b"WATCHDOG=1":
        pass
    assert message == b"STOPPING=1"
