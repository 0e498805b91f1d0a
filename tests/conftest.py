"""Session-wide fixtures: one real mosquitto, unique topics per test."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.broker import Mosquitto


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """A real mosquitto broker on an ephemeral port, shared by the session."""
    broker = Mosquitto.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def topic() -> str:
    """A topic prefix no other test uses."""
    return f"edgefn-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short private folder for unix sockets (their paths are limited to 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="ef-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def sockdir(socket_dir: Path) -> str:
    """``socket_dir`` as a string, for the runtime tests."""
    return str(socket_dir)
