"""The one place edgefn reaches into aiomqtt's and paho's private parts.

aiomqtt 2.5.1 has no manual-ack API and paho 2.2.0 (both pinned) completes a
QoS 2 handshake only for messages it handed over, so the hub drives aiomqtt's
paho client directly. Every private name it relies on is used here and
nowhere else; ``tests/manager/test_mqtt_internals.py`` fails the moment an
upgrade removes one of them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import aiomqtt
import paho.mqtt.client as paho


def paho_client(client: aiomqtt.Client) -> paho.Client:
    """The paho client under an aiomqtt client (for manual acks and our own callbacks)."""
    return client._client  # noqa: SLF001


def client_loop(client: aiomqtt.Client) -> asyncio.AbstractEventLoop:
    """The event loop an aiomqtt client runs on (its futures must be made there)."""
    return client._loop  # noqa: SLF001


def fail_connecting(client: aiomqtt.Client, error: aiomqtt.MqttError) -> None:
    """Fail a connect still waiting for CONNACK (aiomqtt would wait out its timeout)."""
    connecting = client._connected  # noqa: SLF001
    if not connecting.done():
        connecting.set_exception(error)


def on_disconnected(client: aiomqtt.Client, callback: Callable[[asyncio.Future[None]], object]) -> None:
    """Call ``callback`` with aiomqtt's "disconnected" future when the connection is lost."""
    client._disconnected.add_done_callback(callback)  # noqa: SLF001


def release_sockets(client: paho.Client) -> None:
    """Close paho's wake-up socket pair, which outlives the client otherwise."""
    client._reset_sockets()  # noqa: SLF001


def complete_unknown_pubrel(client: paho.Client) -> None:
    """Answer a PUBREL for a QoS 2 message this client never saw with PUBCOMP.

    With manual acks paho 2.2 sends PUBCOMP only from ``ack()``, and only for
    messages it handed over; a PUBREL for one that died with an earlier process
    or connection would otherwise stay pending in the broker's session forever.
    """
    handle = client._handle_pubrel  # noqa: SLF001 - paho's packet handler, looked up per packet

    def handle_pubrel() -> paho.MQTTErrorCode:
        packet = client._in_packet["packet"]  # noqa: SLF001 - the packet being handled
        mid = int.from_bytes(packet[:2], "big") if len(packet) >= 2 else None
        known = mid in client._in_messages  # noqa: SLF001
        rc = handle()
        if mid is not None and not known and rc == paho.MQTT_ERR_SUCCESS:
            return client._send_pubcomp(mid)  # noqa: SLF001
        return rc

    client._handle_pubrel = handle_pubrel  # type: ignore[method-assign]  # noqa: SLF001


class _NoWaiter:
    """The condition of a message nobody waits for: ``with`` and ``notify`` do nothing."""

    def __enter__(self) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        return None

    def notify(self, n: int = 1) -> None:
        return None


_NO_WAITER = _NoWaiter()
_FIRST_WAIT = threading.Lock()


class _LeanMessageInfo(paho.MQTTMessageInfo):
    """paho's ``MQTTMessageInfo`` without a ``threading.Condition`` per message.

    paho makes one for every message in and out, for ``wait_for_publish``
    from another thread, which the hub never calls: building it was about a
    sixth of the manager's CPU per message. A real one is made on the first wait.
    """

    __slots__ = ()

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self._published = False
        self._condition = _NO_WAITER  # type: ignore[assignment]
        self.rc = paho.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        # Published first, then the condition read once: a waiter that made its
        # condition after this read checks _published before it waits.
        self._published = True
        condition = self._condition
        if condition is not _NO_WAITER:
            with condition:
                condition.notify()

    def wait_for_publish(self, timeout: float | None = None) -> None:
        with _FIRST_WAIT:
            if self._condition is _NO_WAITER:
                self._condition = threading.Condition()
        super().wait_for_publish(timeout)


def lean_message_info() -> None:
    """Make paho build :class:`_LeanMessageInfo` for every message (it looks the class up
    by name at each ``MQTTMessage`` and ``publish``). Idempotent; the manager's process only."""
    paho.MQTTMessageInfo = _LeanMessageInfo  # type: ignore[misc]
