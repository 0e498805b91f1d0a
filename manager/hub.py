"""One MQTT connection per clientid: manual QoS 1 and 2 acks, presence, reconnect, TLS.

A :class:`Hub` owns one reconnecting connection. Every incoming message is handed
to ``on_message`` as a :class:`Delivery`, in order, on the event loop; a QoS 1
delivery stays unacknowledged at the broker until :meth:`Hub.ack` is called, so
a message whose result was never published is redelivered after a reconnect
(``cleansession: false`` keeps the session at the broker).

QoS 2 as paho 2.2 does it: paho answers PUBLISH with PUBREC at once, keeps the
message in memory and hands it over only when PUBREL comes; with manual acks
PUBCOMP waits for :meth:`Hub.ack`. Once PUBREC is sent the broker never sends
that message again, so a QoS 2 input held in a process that dies (or on a
connection that drops, since every connection is a fresh paho client) is lost:
QoS 2 here means "at most once, never twice", not "at least once" (QoS 1 is
that). A PUBREL for a message this client does not know (it died with it) is
answered with PUBCOMP, so the broker's session does not keep it forever.

Presence (``hub.status``): every connection registers the offline message as
its MQTT last will and publishes the online message once connected; a graceful
stop publishes offline before DISCONNECT (which discards the will).

How it sits on aiomqtt 2.5.1 (pinned): aiomqtt connects, drives paho's socket
from the event loop and disconnects. aiomqtt has no manual-ack API and its
publish waits out its timeout when the connection drops, so this module installs
its own callbacks on aiomqtt's paho client (through ``mqtt_internals``) for messages,
PUBACK/SUBACK/UNSUBACK and CONNACK. Each connection is a fresh aiomqtt client
with its own *generation*: an ack is only ever sent on the connection its
message came on, and everything waiting on a connection fails with
:class:`HubDisconnected` the moment it is lost.

Limits the caller must respect: paho numbers packets with 16-bit ids, so at
most ~65,000 publishes may be pending on one hub at once (the router bounds its
backlog far below that); nothing bounds incoming messages here either: a
delivery dropped on the floor would keep a broker in-flight slot until the next
reconnect, so bounding work is the router's job.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from edgefn.manager.link import HubDisconnected, HubError, Link
from edgefn.manager.mqtt_internals import (
    complete_unknown_pubrel, fail_connecting, lean_message_info, lean_packets, on_disconnected, prompt_writes,
    release_sockets, tcp_socket,
)

if TYPE_CHECKING:
    from edgefn.manager.config import HubConfig

log = logging.getLogger("edgefn.hub")

FIRST_BACKOFF = 0.5  # seconds; doubles up to HubConfig.interval
OPERATION_TIMEOUT = 10.0  # connect (CONNACK), subscribe, unsubscribe, disconnect
PUBLISH_TIMEOUT = 30.0

_SUCCESS = paho.MQTT_ERR_SUCCESS
_TRANSPORTS = {"tcp": "tcp", "ssl": "tcp", "ws": "websockets", "wss": "websockets"}


@dataclass(frozen=True, slots=True)
class Delivery:
    """An incoming message, tagged with the connection (generation) it came on."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    generation: int
    received: float  # time.time() at receipt


class Hub:
    """One reconnecting MQTT connection (one clientid).

    Use as ``async with Hub(config, clientid, on_message) as hub:``; the context
    owns a task named ``hub:<name>`` that connects, resubscribes and reconnects
    with jittered backoff (500 ms doubling up to ``config.interval``).
    ``on_message`` is called on the event loop for every message, in order; it
    must not block (schedule the work) and should call :meth:`ack` for QoS 1.
    """

    def __init__(
        self,
        config: HubConfig,
        clientid: str,
        on_message: Callable[[Delivery], None],
        *,
        name: str | None = None,
    ) -> None:
        if config.scheme not in _TRANSPORTS:
            raise HubError(f"unknown hub scheme {config.scheme!r} (expected tcp, ssl, ws or wss)")
        self.name = name or clientid
        self.last_error: HubError | None = None  # why the latest connection attempt failed
        self.reconnects = 0  # connections that came up after the first one
        self._was_up = False
        self._config = config
        self._clientid = clientid
        self._on_message = on_message
        self._subscriptions: dict[str, int] = {}
        self._refused: list[str] = []
        self._link: Link | None = None
        self._generation = 0
        self._delivering = True
        self._ready = asyncio.Event()
        self._tls: ssl.SSLContext | None = None
        self._stop: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._status_topic = config.status.topic_for(clientid) if config.status is not None else ""

    @property
    def connected(self) -> bool:
        """True while a connection is up (CONNACK received, not yet lost)."""
        return self._link is not None

    @property
    def generation(self) -> int:
        """The generation of the latest connection (0 before the first one)."""
        return self._generation

    async def __aenter__(self) -> Self:
        lean_message_info()
        if self._config.scheme in ("ssl", "wss"):
            self._tls = await asyncio.to_thread(tls_context, self._config)
        self._stop = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"hub:{self.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Disconnect cleanly (DISCONNECT, so the broker keeps the session)."""
        assert self._stop is not None and self._task is not None
        if not self._stop.done():
            self._stop.set_result(None)
        if self._link is None:
            # Connecting or backing off: nothing to say goodbye to.
            self._task.cancel()
        done, _ = await asyncio.wait([self._task], timeout=OPERATION_TIMEOUT + 1)
        if not done:
            self._task.cancel()
            await asyncio.wait([self._task])
        self._link = None

    # -- subscriptions ------------------------------------------------------------

    async def subscribe(self, topic: str, qos: int) -> None:
        """Subscribe now and after every reconnect.

        Returns once the broker granted it, or at once while disconnected (it is
        applied on connect; :meth:`wait_ready` waits for that). Raises
        :class:`HubError` when the broker refuses it (it is then forgotten).
        """
        if qos not in (0, 1, 2):
            raise HubError(f"subscription QoS must be 0, 1 or 2, not {qos!r}")
        try:
            aiomqtt.Wildcard(topic)  # before remembering it: a bad filter would fail every reconnect
        except (TypeError, ValueError) as exc:
            raise HubError(f"clientid {self.name}: cannot subscribe to {topic!r}: {exc}") from exc
        self._subscriptions[topic] = qos
        link = self._link
        if link is not None:
            refused = await self._grant(link, [(topic, qos)])
            if refused:
                raise HubError(f"clientid {self.name}: the broker refused the subscription to {topic!r}")

    async def unsubscribe(self, topic: str) -> None:
        """Forget a subscription and, if connected, unsubscribe from it."""
        self._subscriptions.pop(topic, None)
        link = self._link
        if link is None:
            return
        rc, mid = link.paho.unsubscribe(topic)
        if rc != _SUCCESS or mid is None:
            return  # lost: the next connection will not resubscribe it
        try:
            await link.wait(mid, OPERATION_TIMEOUT, "unsubscribe from", topic)
        except HubDisconnected:
            pass

    async def wait_ready(self) -> None:
        """Wait until connected and every subscription is granted.

        Raises :class:`HubError` naming the subscriptions the broker refused on
        this connection.
        """
        await self._ready.wait()
        if self._refused:
            raise HubError(f"clientid {self.name}: the broker refused subscriptions to {self._refused}")

    # -- the hot path -------------------------------------------------------------

    async def publish(
        self, topic: str, payload: bytes, qos: int, timeout: float = PUBLISH_TIMEOUT, *, retain: bool = False
    ) -> None:
        """Publish and return once the hub accepted it.

        QoS 2: on PUBCOMP; QoS 1: on PUBACK; QoS 0: once written to the socket. Raises
        :class:`HubDisconnected` at once when not connected or when the
        connection drops first, :class:`HubError` on a timeout or a bad topic.
        """
        link = self._link
        if link is None:
            raise HubDisconnected(f"clientid {self.name}: not connected")
        try:
            info = link.paho.publish(topic, payload, qos, retain)
        except ValueError as exc:
            raise HubError(f"clientid {self.name}: cannot publish to {topic!r}: {exc}") from exc
        if info.rc != _SUCCESS:
            if info.rc == paho.MQTT_ERR_NO_CONN:
                raise HubDisconnected(f"clientid {self.name}: not connected")
            raise HubError(f"clientid {self.name}: cannot publish to {topic!r}: {paho.error_string(info.rc)}")
        await link.wait(info.mid, timeout, "publish to", topic)

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery: PUBACK for QoS 1, PUBCOMP for QoS 2 (a no-op for QoS 0).

        Only on the connection it came on: after a reconnect the broker
        redelivers a QoS 1 message instead (and answers a QoS 2 one's PUBREL
        here at once), and acking its old packet id on the new connection
        could acknowledge a different message.
        """
        link = self._link
        if delivery.qos and link is not None and delivery.generation == link.generation:
            link.paho.ack(delivery.mid, delivery.qos)

    def stop_delivering(self) -> None:
        """Stop calling ``on_message`` (shutdown) for QoS 0 and 1: later QoS 1 messages stay unacked.

        QoS 2 messages are still delivered: paho has PUBREC'd them already, so
        the broker will not send them again and dropping one would lose it.
        """
        self._delivering = False

    # -- the connection task ------------------------------------------------------

    async def _run(self) -> None:
        assert self._stop is not None
        delay = FIRST_BACKOFF
        while not self._stop.done():
            if await self._connect_once():
                delay = FIRST_BACKOFF
            if self._stop.done():
                return
            pause = random.uniform(delay / 2, delay)
            log.info("clientid %s: reconnecting in %.1fs", self.name, pause)
            await asyncio.wait([self._stop], timeout=pause)
            delay = min(delay * 2, max(self._config.interval, FIRST_BACKOFF))

    async def _connect_once(self) -> bool:
        """One connection, from connect to loss or stop; True if it came up."""
        self._generation += 1
        link = Link(self._new_client(), self._generation)
        self._install_callbacks(link)
        try:
            async with link.client:
                await self._serve(link)
        except aiomqtt.MqttError as exc:
            if not link.up:
                self.last_error = HubError(f"cannot connect to {self._where()}: {exc}")
            log.warning("clientid %s: connection to %s failed: %s", self.name, self._where(), exc)
        except Exception:  # a bug here must not end reconnection for good
            log.exception("clientid %s: connection failed unexpectedly", self.name)
        finally:
            self._detach(link, "connection closed")
            release_sockets(link.paho)
        return link.up

    async def _serve(self, link: Link) -> None:
        assert self._stop is not None
        self.last_error = None
        self.reconnects += self._was_up
        self._was_up = True
        log.info("clientid %s: connected to %s as %r", self.name, self._where(), self._clientid,
                 extra={"clientid": self._clientid})
        await self._announce(link, online=True)
        if self._subscriptions:
            await self._grant(link, list(self._subscriptions.items()))
        else:
            self._update_ready(link)
        await asyncio.wait([link.closed, self._stop], return_when=asyncio.FIRST_COMPLETED)
        if link.closed.done() and not self._stop.done():
            # paho reports a dropped socket as "Unspecified error": say what happened instead.
            self.last_error = HubDisconnected(f"connection to {self._where()} lost")
            log.warning("clientid %s: %s", self.name, self.last_error, extra={"clientid": self._clientid})
        elif self._link is link:
            await self._announce(link, online=False)

    async def _announce(self, link: Link, online: bool) -> None:
        """Publish the presence message (``hub.status``) on ``link``, if presence is on."""
        status = self._config.status
        if status is None:
            return
        payload = status.online if online else status.offline
        try:
            info = link.paho.publish(self._status_topic, payload, status.qos, status.retain)
            if info.rc == _SUCCESS:
                await link.wait(info.mid, OPERATION_TIMEOUT, "publish to", self._status_topic)
        except HubError as exc:
            log.warning("clientid %s: could not publish its %s status: %s",
                        self.name, "online" if online else "offline", exc)

    async def _grant(self, link: Link, pairs: list[tuple[str, int]]) -> list[str]:
        """Subscribe on ``link``; return the refused topics (none if the link drops)."""
        self._ready.clear()
        link.granting += 1
        try:
            try:
                rc, mid = link.paho.subscribe(pairs)
            except ValueError as exc:
                raise HubError(f"clientid {self.name}: cannot subscribe to {pairs}: {exc}") from exc
            if rc != _SUCCESS or mid is None:
                return []
            try:
                codes: list[ReasonCode] = await link.wait(mid, OPERATION_TIMEOUT, "subscribe to", pairs)
            except HubDisconnected:
                return []  # resubscribed on the next connection
            _ack_now(link.paho.socket())
            refused = [topic for (topic, _), code in zip(pairs, codes) if code.is_failure]
            for topic in refused:
                self._subscriptions.pop(topic, None)
                self._refused.append(topic)
                log.error("clientid %s: the broker refused the subscription to %r", self.name, topic)
            return refused
        finally:
            link.granting -= 1
            self._update_ready(link)

    def _update_ready(self, link: Link) -> None:
        if link is self._link and link.granting == 0:
            self._ready.set()

    # -- paho callbacks (called on the event loop, inside paho's socket handling) --

    def _install_callbacks(self, link: Link) -> None:
        client, p = link.client, link.paho
        p.manual_ack_set(True)
        p.disable_logger()  # paho logs every packet at debug level; we log what matters
        complete_unknown_pubrel(p)
        lean_packets(p)
        prompt_writes(client)
        aiomqtt_on_connect = p.on_connect

        def on_connect(c: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any = None) -> None:
            aiomqtt_on_connect(c, userdata, flags, reason, props)
            if not reason.is_failure and not link.up:
                self._attach(link)

        aiomqtt_on_disconnect = p.on_disconnect

        def on_disconnect(c: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any = None) -> None:
            aiomqtt_on_disconnect(c, userdata, flags, reason, props)
            # aiomqtt ignores a close before CONNACK (a TLS client certificate
            # refused after the handshake) and waits out its timeout: fail now.
            fail_connecting(client, aiomqtt.MqttError("the broker closed the connection before CONNACK"))

        p.on_connect = on_connect
        p.on_disconnect = on_disconnect
        p.on_message = self._message_callback(link)
        p.on_publish = lambda _c, _u, mid, _rc, _props: link.resolve(mid, None)
        p.on_subscribe = lambda _c, _u, mid, codes, _props: link.resolve(mid, codes)
        p.on_unsubscribe = lambda _c, _u, mid, _codes, _props: link.resolve(mid, None)
        # Not used (we bypass aiomqtt's publish), but it would warn per call.
        client.pending_calls_threshold = 1 << 30

    def _message_callback(self, link: Link) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
        # The hot path: one Delivery per message, no logging, locals bound once.
        deliver = self._on_message
        generation = link.generation
        now = time.time
        hub = self

        def on_message(_c: paho.Client, _u: Any, m: paho.MQTTMessage) -> None:
            if not hub._delivering and m.qos != 2:
                return
            try:
                topic = m.topic
            except UnicodeDecodeError:
                # No rule can match a topic that is not UTF-8: drop it for good.
                log.warning("clientid %s: dropped a message whose topic is not UTF-8", hub.name)
                if m.qos:
                    link.paho.ack(m.mid, m.qos)
                return
            try:
                deliver(Delivery(topic, m.payload, m.qos, m.retain, m.mid, generation, now()))
            except Exception:
                log.exception("clientid %s: on_message failed", hub.name)

        return on_message

    def _attach(self, link: Link) -> None:
        """CONNACK accepted: from here on, publish and ack use this link."""
        link.up = True
        _set_nodelay(link.paho.socket())
        on_disconnected(link.client, lambda fut: self._detach(link, "connection lost", fut))
        self._refused = []
        self._link = link

    def _detach(self, link: Link, reason: str, lost: asyncio.Future[None] | None = None) -> None:
        if self._link is link:
            self._link = None
            self._ready.clear()
        if not link.closed.done():
            cause = None if lost is None or lost.cancelled() else lost.exception()
            link.closed.set_result(cause)
        link.fail(f"clientid {self.name}: {reason}")

    def _new_client(self) -> aiomqtt.Client:
        c = self._config
        will = None
        if c.status is not None:
            will = aiomqtt.Will(self._status_topic, c.status.offline, c.status.qos, c.status.retain)
        return aiomqtt.Client(
            c.host,
            c.port,
            username=c.username,
            password=c.password,
            logger=log,
            identifier=self._clientid,
            clean_session=c.cleansession,
            transport=_TRANSPORTS[c.scheme],  # type: ignore[arg-type]
            timeout=OPERATION_TIMEOUT,
            keepalive=max(0, round(c.keepalive)),
            # Unbounded: a discarded unacked message would hold a broker slot.
            max_queued_incoming_messages=None,
            # 0 = no in-flight window: paho rescans its whole outgoing queue on
            # every PUBACK when one is set (quadratic under a backlog).
            max_inflight_messages=0,
            tls_context=self._tls,
            websocket_path=c.websocket_path if c.scheme in ("ws", "wss") else None,
            will=will,
        )

    def _where(self) -> str:
        c = self._config
        path = c.websocket_path if c.scheme in ("ws", "wss") else ""
        return f"{c.scheme}://{c.host}:{c.port}{path}"


def tls_context(config: HubConfig) -> ssl.SSLContext:
    """The client TLS context: the system CAs or ``ca``; mutual with cert and key."""
    try:
        ctx = ssl.create_default_context(cafile=str(config.ca) if config.ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise HubError(f"hub.ca {config.ca}: TLS cannot use it as a CA certificate (PEM expected): {exc}") from None
    try:
        if config.cert is not None:
            ctx.load_cert_chain(config.cert, config.key)
    except (OSError, ssl.SSLError) as exc:
        raise HubError(f"hub.cert {config.cert} with hub.key {config.key}: TLS cannot use them (a PEM certificate "
                       f"and its matching key expected): {exc}") from None
    return ctx


def _set_nodelay(sock: Any) -> None:
    """Disable Nagle: with the broker's delayed ACKs a lone PUBACK waits ~40 ms."""
    _set_tcp_option(sock, socket.TCP_NODELAY)


def _ack_now(sock: Any) -> None:
    """Acknowledge what came in (the SUBACK) now, not ~40 ms later.

    Our kernel delays that ACK, and a broker that keeps Nagle on (mosquitto's
    default) holds the first message for a new subscription behind its
    unacknowledged SUBACK: the first message would wait ~40 ms. Linux only.
    """
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        _set_tcp_option(sock, quickack)


def _set_tcp_option(sock: Any, option: int) -> None:
    raw = tcp_socket(sock)
    if raw is not None:
        raw.setsockopt(socket.IPPROTO_TCP, option, 1)
