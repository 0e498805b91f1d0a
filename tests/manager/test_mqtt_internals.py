"""What manager/mqtt_internals.py relies on in aiomqtt's and paho's private parts (pinned versions).

An upgrade that moves any of it must fail here, not in a delivery.
"""

from __future__ import annotations

import asyncio
import inspect
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
