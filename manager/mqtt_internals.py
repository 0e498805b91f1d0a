"""The one place edgefn reaches into aiomqtt's and paho's private parts.

aiomqtt 2.5.1 has no manual-ack API and paho 2.2.0 (both pinned) completes a
QoS 2 handshake only for messages it handed over, so the hub drives aiomqtt's
paho client directly. Every private name it relies on is used here and
nowhere else; ``tests/manager/test_mqtt_internals.py`` fails the moment an
upgrade removes one of them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


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


def tcp_socket(sock: Any) -> socket.socket | None:
    """The TCP socket under what ``paho.Client.socket()`` returns (paho wraps a websocket
    connection around it), or None when there is none (not connected)."""
    raw = getattr(sock, "_socket", sock)  # paho's WebsocketWrapper keeps it there
    return raw if isinstance(raw, socket.socket) else None


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


class _LeanMatcher(MQTTMatcher):
    """paho's topic matcher for ``message_callback_add``, which the hub never uses: with no
    filter in it, a message's topic is not walked level by level to find none."""

    def iter_match(self, topic: str) -> Iterator[Any]:
        if not self._root._children and self._root._content is None:  # noqa: SLF001
            return iter(())
        return super().iter_match(topic)


def lean_packets(client: paho.Client) -> None:
    """Spare paho the per-packet work an MQTT 3.1.1 client does not need.

    - A 3.1.1 PUBACK is two bytes, a packet id; paho decodes it into a fresh
      ``ReasonCode`` and a fresh ``Properties`` (an MQTT 5 property table) each
      time, about a tenth of the manager's CPU per message. Here it is read
      directly, and paho's own ``_do_on_publish`` completes it with one shared
      success code and one empty property set. PUBCOMP, MQTT 5 and a malformed
      PUBACK go to paho's handler as before.
    - The ``message_callback_add`` matcher is searched for every message even
      when empty.
    """
    handle = client._handle_pubackcomp  # noqa: SLF001 - looked up on the instance per packet
    success = ReasonCode(PacketTypes.PUBACK)
    no_properties = Properties(PacketTypes.PUBACK)

    def handle_pubackcomp(cmd: Literal["PUBACK", "PUBCOMP"]) -> paho.MQTTErrorCode:
        packet = client._in_packet["packet"]  # noqa: SLF001 - the packet being handled
        if cmd != "PUBACK" or client.protocol == paho.MQTTv5 or len(packet) != 2:
            return handle(cmd)
        mid = (packet[0] << 8) | packet[1]
        with client._out_message_mutex:  # noqa: SLF001
            if mid in client._out_messages:  # noqa: SLF001 - acknowledged once only, as paho does
                return client._do_on_publish(mid, success, no_properties)  # noqa: SLF001
        return paho.MQTT_ERR_SUCCESS

    client._handle_pubackcomp = handle_pubackcomp  # type: ignore[method-assign]  # noqa: SLF001
    if not isinstance(client._on_message_filtered, _LeanMatcher):  # noqa: SLF001
        matcher = _LeanMatcher()
        matcher._root = client._on_message_filtered._root  # noqa: SLF001 - keep what may be there
        client._on_message_filtered = matcher  # noqa: SLF001


def prompt_writes(client: aiomqtt.Client) -> None:
    """Send what paho queues at the end of the loop iteration that queued it.

    paho asks for a writer when it queues a packet; aiomqtt answers with
    ``call_soon_threadsafe(add_writer)``, since paho may ask from the connect
    thread. On the loop's own thread that costs every burst of packets (a
    result's PUBLISH, an input's PUBACK) a byte through the loop's self-pipe,
    a wake-up, two ``epoll_ctl`` and one more loop iteration before the packet
    leaves. There, one ``call_soon`` of a flush does instead: it writes what is
    queued, and only what the socket does not take waits for a writer.
    Off the loop's thread, aiomqtt's way stays. Call it on the loop's thread.
    """
    p = paho_client(client)
    loop = client_loop(client)
    loop_thread = threading.get_ident()
    queued_from_elsewhere = p.on_socket_register_write  # aiomqtt's
    disconnected = client._disconnected  # noqa: SLF001 - what aiomqtt fails when a write fails

    def write() -> None:
        try:
            p.loop_write()
        except Exception as exc:  # as aiomqtt's writer: a failed write means the connection broke
            if not disconnected.done():
                disconnected.set_exception(exc)

    def flush() -> None:
        write()
        sock = p.socket()
        # A partial write leaves paho "registered" without asking again: the writer is ours to add.
        if p.want_write() and sock is not None:
            loop.add_writer(sock.fileno(), write)

    def register_write(c: paho.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == loop_thread:
            loop.call_soon(flush)
        else:
            queued_from_elsewhere(c, userdata, sock)

    p.on_socket_register_write = register_write
