"""The hub's device-conversation features on a real mosquitto: QoS 2, retain, presence."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from importlib.metadata import version

import aiomqtt
import paho.mqtt.client as paho
import pytest

from edgefn.manager.config import StatusConfig
from edgefn.manager.hub import Hub
from edgefn.manager.topics import compile_template
from support.broker import Mosquitto
from support.mqtt import Probe
from support.hub import WAIT, Inbox, Proxy, hub_config, publish, ready_hub, wait_generation


@pytest.fixture
def narrow() -> Iterator[Mosquitto]:
    """A mosquitto that has one QoS 1/2 message in flight per client at a time.

    The next message is sent only once the previous one's handshake completed,
    so what a client receives shows when it completed it.
    """
    broker = Mosquitto.start("max_inflight_messages 1\n")
    try:
        yield broker
    finally:
        broker.stop()


# -- QoS 2 -----------------------------------------------------------------------------------


async def test_qos2_round_trip_in_and_out(mosquitto: Mosquitto, topic: str) -> None:
    inbox = Inbox()
    async with Probe(mosquitto.port, [f"{topic}/out"], qos=2) as probe:
        async with Hub(hub_config(mosquitto), f"{topic}-c", inbox) as hub:
            inbox.acking = hub
            await ready_hub(hub, f"{topic}/in", qos=2)
            await publish(mosquitto, f"{topic}/in", b"exactly", qos=2)
            [delivery] = await inbox.wait_for(1)
            assert (delivery.payload, delivery.qos) == (b"exactly", 2)
            await hub.publish(f"{topic}/out", b"answer", 2)  # returns on PUBCOMP
            message = await probe.next()
            assert (message.payload, message.qos) == (b"answer", 2)


async def test_a_qos2_delivery_completes_its_handshake_only_when_acked(narrow: Mosquitto, topic: str) -> None:
    inbox = Inbox()
    async with Hub(hub_config(narrow), f"{topic}-c", inbox) as hub:
        await ready_hub(hub, topic, qos=2)
        await publish(narrow, topic, b"first", b"second", qos=2)
        [first] = await inbox.wait_for(1)
        with pytest.raises(TimeoutError):  # the broker holds "second" until PUBCOMP of "first"
            await inbox.wait_for(2, timeout=0.5)
        hub.ack(first)
        await inbox.wait_for(2)
        assert inbox.payloads == [b"first", b"second"]


async def test_a_pubrel_for_a_message_that_died_with_its_client_is_completed(narrow: Mosquitto, topic: str) -> None:
    config = hub_config(narrow)
    first = Inbox()
    async with Hub(config, f"{topic}-c", first) as hub:
        await ready_hub(hub, topic, qos=2)
        await publish(narrow, topic, b"held", qos=2)
        await first.wait_for(1)  # handed over, never acked: its PUBCOMP never went out
    later = Inbox()
    async with Hub(config, f"{topic}-c", later) as hub:
        later.acking = hub
        await ready_hub(hub, topic, qos=2)
        # The broker resent PUBREL; the new client completed it, so the window is free again.
        await publish(narrow, topic, b"next", qos=2)
        await later.wait_for(1)
        assert later.payloads == [b"next"]  # "held" is not delivered twice


# -- retain ---------------------------------------------------------------------------------


async def test_retained_publish_and_the_retain_flag_of_deliveries(mosquitto: Mosquitto, topic: str) -> None:
    async with Hub(hub_config(mosquitto), f"{topic}-p", Inbox()) as hub:
        await ready_hub(hub, f"{topic}/unused")
        await hub.publish(f"{topic}/state", b"kept", 1, retain=True)
        await hub.publish(f"{topic}/state2", b"not kept", 1)
    inbox = Inbox()
    async with Hub(hub_config(mosquitto), f"{topic}-s", inbox) as hub:
        inbox.acking = hub
        await ready_hub(hub, f"{topic}/+")
        [delivery] = await inbox.wait_for(1)
        assert (delivery.topic, delivery.payload, delivery.retain) == (f"{topic}/state", b"kept", True)
        await hub.publish(f"{topic}/state", b"", 1, retain=True)  # clear it for the broker's sake
        [_, live] = await inbox.wait_for(2)
        assert live.retain is False


# -- presence -------------------------------------------------------------------------------


def presence(topic: str, **overrides: object) -> StatusConfig:
    fields: dict[str, object] = {"topic": compile_template(f"{topic}/{{clientid}}/status"), "retain": True}
    fields.update(overrides)
    return StatusConfig(**fields)  # type: ignore[arg-type]


async def test_a_connection_publishes_online_then_offline_when_it_stops(mosquitto: Mosquitto, topic: str) -> None:
    config = hub_config(mosquitto, status=presence(topic, qos=1))
    async with Probe(mosquitto.port, [f"{topic}/+/status"]) as probe:
        async with Hub(config, "edge-a", Inbox()) as hub:
            await ready_hub(hub, f"{topic}/in")
            online = await probe.next()
            assert (online.topic.value, online.payload) == (f"{topic}/edge-a/status", b'{"status":"connected"}')
        offline = await probe.next()
        assert offline.payload == b'{"status":"disconnected"}'
    # Retained: a newcomer learns the last state at once.
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as late:
        await late.subscribe(f"{topic}/+/status")
        async with asyncio.timeout(WAIT):
            message = await anext(aiter(late.messages))
        assert (message.payload, message.retain) == (b'{"status":"disconnected"}', True)
        await late.publish(f"{topic}/edge-a/status", b"", retain=True)


async def test_online_is_published_again_after_a_reconnect(mosquitto: Mosquitto, topic: str) -> None:

    async with Proxy(mosquitto.port) as proxy, Probe(mosquitto.port, [f"{topic}/+/status"]) as probe:
        config = hub_config(mosquitto, port=proxy.port, status=presence(topic, retain=False, online=b"up",
                                                                         offline=b"down"))
        async with Hub(config, "edge-b", Inbox()) as hub:
            await ready_hub(hub, f"{topic}/in")
            assert (await probe.next()).payload == b"up"
            proxy.cut()  # an abnormal loss: the broker publishes the will
            assert (await probe.next()).payload == b"down"
            await wait_generation(hub, 2)
            assert (await probe.next()).payload == b"up"
        assert (await probe.next()).payload == b"down"
