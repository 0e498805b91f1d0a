"""Session-wide fixtures: one real mosquitto, unique topics per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

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
