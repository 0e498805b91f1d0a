"""What manager/mqtt_internals.py relies on in aiomqtt's and paho's private parts (pinned versions).

An upgrade that moves any of it must fail here, not in a delivery.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from importlib.metadata import version

import aiomqtt
import paho.mqtt.client as paho
import pytest

from edgefn.manager import mqtt_internals

pytestmark = pytest.mark.timeout(30)


async def test_the_pinned_versions_have_every_private_name_the_adapter_uses() -> None:
    assert (version("paho-mqtt"), version("aiomqtt")) == ("2.2.0", "2.5.1")
    client = aiomqtt.Client("127.0.0.1", 1)
    for name in ("_client", "_loop", "_connected", "_disconnected"):
        assert hasattr(client, name), name
    p = mqtt_internals.paho_client(client)
    assert isinstance(p, paho.Client)
    for name in ("_handle_pubrel", "_send_pubcomp", "_in_messages", "_in_packet", "_reset_sockets"):
        assert hasattr(p, name), name
    # The PUBREL handler is looked up on the instance for each packet, so wrapping it works.
    assert "self._handle_pubrel()" in inspect.getsource(paho.Client._packet_handle)
    # QoS 2: PUBREC at once, PUBCOMP only from ack() with manual acks.
    assert "_send_pubrec" in inspect.getsource(paho.Client._handle_publish)
    assert "_send_pubcomp" in inspect.getsource(paho.Client.ack)


async def test_the_adapter_reaches_what_it_says() -> None:
    client = aiomqtt.Client("127.0.0.1", 1)
    assert mqtt_internals.client_loop(client) is asyncio.get_running_loop()
    mqtt_internals.fail_connecting(client, aiomqtt.MqttError("refused"))
    with pytest.raises(aiomqtt.MqttError, match="refused"):
        await client._connected  # noqa: SLF001 - the future the adapter failed
    seen: list[object] = []
    mqtt_internals.on_disconnected(client, seen.append)
    client._disconnected.set_result(None)  # noqa: SLF001 - what aiomqtt does when the connection drops
    await asyncio.sleep(0)
    assert seen == [client._disconnected]  # noqa: SLF001


def test_with_manual_acks_an_unknown_pubrel_is_completed_by_the_adapter() -> None:
    p = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="pin", protocol=paho.MQTTv311)
    p.manual_ack_set(True)  # as the hub runs it: paho alone would leave this PUBREL unanswered
    sent: list[int] = []
    p._send_pubcomp = lambda mid: sent.append(mid) or paho.MQTT_ERR_SUCCESS  # type: ignore[method-assign]  # noqa: SLF001
    mqtt_internals.complete_unknown_pubrel(p)
    p._in_packet["packet"] = (7).to_bytes(2, "big")  # noqa: SLF001 - a PUBREL for mid 7, never seen
    p._handle_pubrel()  # noqa: SLF001
    assert sent == [7]


def test_lean_message_infos_are_what_paho_builds_and_still_report_publishing() -> None:
    # paho looks MQTTMessageInfo up by name for every message in and out.
    source = inspect.getsource(paho)
    assert "self.info = MQTTMessageInfo(mid)" in source and "info = MQTTMessageInfo(local_mid)" in source
    mqtt_internals.lean_message_info()
    message = paho.MQTTMessage(mid=3, topic=b"t")
    assert isinstance(message.info, paho.MQTTMessageInfo)
    assert not isinstance(message.info._condition, threading.Condition)  # noqa: SLF001
    assert tuple(message.info) == (paho.MQTT_ERR_SUCCESS, 3)
    assert not message.info.is_published()
    message.info._set_as_published()  # noqa: SLF001 - what paho does on PUBACK
    assert message.info.is_published()
    message.info.wait_for_publish(1)  # a thread may still wait: it returns at once here


def test_a_thread_waiting_for_a_lean_message_info_is_woken_when_it_is_published() -> None:
    mqtt_internals.lean_message_info()
    info = paho.MQTTMessage(mid=4, topic=b"t").info
    waiting = threading.Thread(target=info.wait_for_publish, args=(None,))
    waiting.start()
    while not isinstance(info._condition, threading.Condition):  # noqa: SLF001 - made by the first wait
        pass
    info._set_as_published()  # noqa: SLF001
    waiting.join(5)
    assert not waiting.is_alive()


def test_a_lean_puback_completes_the_publish_once_as_paho_would() -> None:
    source = inspect.getsource(paho.Client._packet_handle)
    assert 'self._handle_pubackcomp("PUBACK")' in source  # looked up on the instance: wrapping works
    p = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="pin", protocol=paho.MQTTv311)
    for name in ("_out_messages", "_out_message_mutex", "_in_packet", "_do_on_publish", "_on_message_filtered"):
        assert hasattr(p, name), name
    published: list[tuple[int, bool]] = []
    p.on_publish = lambda _c, _u, mid, reason, _props: published.append((mid, reason.is_failure))
    message = paho.MQTTMessage(mid=7, topic=b"t")
    message.qos = 1
    p._out_messages[7] = message  # noqa: SLF001 - what publish() records while the PUBACK is due
    mqtt_internals.lean_packets(p)
    p._in_packet["packet"] = b"\x00\x07"  # noqa: SLF001 - a PUBACK for mid 7
    assert p._handle_pubackcomp("PUBACK") == paho.MQTT_ERR_SUCCESS  # noqa: SLF001
    assert published == [(7, False)] and 7 not in p._out_messages  # noqa: SLF001
    assert message.info.is_published()
    p._handle_pubackcomp("PUBACK")  # noqa: SLF001 - a duplicate: nothing more
    assert published == [(7, False)]


def test_the_lean_matcher_finds_nothing_quickly_and_still_matches_added_callbacks() -> None:
    p = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="pin", protocol=paho.MQTTv311)
    mqtt_internals.lean_packets(p)
    assert list(p._on_message_filtered.iter_match("a/b")) == []  # noqa: SLF001
    p.message_callback_add("a/#", print)
    assert list(p._on_message_filtered.iter_match("a/b")) == [print]  # noqa: SLF001


def test_the_tcp_socket_is_found_under_pahos_websocket_wrapper() -> None:
    assert "self._socket = socket" in inspect.getsource(paho._WebsocketWrapper.__init__)  # noqa: SLF001
    with socket.socket() as raw:
        assert mqtt_internals.tcp_socket(raw) is raw
        wrapper = paho._WebsocketWrapper.__new__(paho._WebsocketWrapper)  # noqa: SLF001 - no handshake here
        wrapper._socket = raw  # noqa: SLF001 - what its __init__ keeps
        assert mqtt_internals.tcp_socket(wrapper) is raw
    assert mqtt_internals.tcp_socket(None) is None  # not connected


def test_paho_asks_for_a_writer_once_until_it_has_written_everything() -> None:
    """prompt_writes relies on it: after a partial write paho does not ask again, so the flush adds the writer."""
    queue = inspect.getsource(paho.Client._packet_queue)
    assert "self._on_socket_register_write is None" in queue, "with the callback set, paho never writes itself"
    assert "self._call_socket_register_write()" in queue
    register = inspect.getsource(paho.Client._call_socket_register_write)
    assert "self._registered_write" in register and "return" in register
    assert "self._call_socket_unregister_write()" in inspect.getsource(paho.Client.loop_write)


class Trickle:
    """A client's socket that takes 64 KiB, then is full until the next try: a partial write on any
    machine (paho sends until the socket refuses, and a fast loopback took 16 MiB in one go)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._full = True

    def send(self, data: bytes) -> int:
        self._full = not self._full
        if self._full:
            raise BlockingIOError
        return self._sock.send(data[:65536])

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


async def test_prompt_writes_send_at_once_and_finish_a_write_the_socket_did_not_take(mosquitto, topic) -> None:
    loop = asyncio.get_running_loop()
    writers: list[int] = []
    add_writer = loop.add_writer

    def counting(fd: int, callback: object, *args: object) -> None:
        writers.append(fd)
        add_writer(fd, callback, *args)  # type: ignore[arg-type]

    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as listener:
        await listener.subscribe(f"{topic}/#", qos=1)
        client = aiomqtt.Client("127.0.0.1", mosquitto.port)
        mqtt_internals.prompt_writes(client)
        async with client:
            paho_client = mqtt_internals.paho_client(client)
            fd = paho_client.socket().fileno()  # the listener's PUBACKs go aiomqtt's way
            loop.add_writer = counting  # type: ignore[method-assign]
            try:
                for n in range(20):
                    await client.publish(f"{topic}/small", str(n), qos=1)
                assert fd not in writers, "small packets leave from the flush, with no writer"
                paho_client._sock = Trickle(paho_client._sock)  # noqa: SLF001 - where paho keeps its socket
                big = b"x" * 2**20  # sixteen sends, each after the socket was full
                await asyncio.wait_for(client.publish(f"{topic}/big", big, qos=1), 20)
                assert fd in writers, "the rest of a partial write waits for a writer"
            finally:
                del loop.add_writer
        received = []
        async with asyncio.timeout(20):
            async for message in listener.messages:
                received.append(message.payload)
                if len(received) == 21:
                    break
    assert received[:20] == [str(n).encode() for n in range(20)]
    assert received[20] == big
