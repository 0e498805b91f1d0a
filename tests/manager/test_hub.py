"""The hub connection against a real mosquitto: manual QoS 1 acks, reconnect, auth, TLS."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edgefn.manager.config import HubConfig
from edgefn.manager.hub import Delivery, Hub, HubDisconnected, HubError
from support.broker import MOSQUITTO, Mosquitto, free_port, wait_for_port
from support.hub import WAIT, Inbox, Proxy, hub_config, publish, ready_hub, wait_generation

def restart(broker: Mosquitto) -> Mosquitto:
    """Stop mosquitto and start it again on the same port and config (a fresh session store)."""
    broker.process.terminate()
    broker.process.wait(timeout=5)
    if broker.process.stderr:
        broker.process.stderr.close()
    process = subprocess.Popen(
        [MOSQUITTO, "-c", str(broker.directory / "mosquitto.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    restarted = Mosquitto(broker.port, process, broker.directory)
    try:
        wait_for_port(broker.port)
    except TimeoutError:
        restarted.stop()
        raise
    return restarted


@pytest.fixture
def private() -> Iterator[Mosquitto]:
    """A mosquitto of this test's own, to kill or stop at will."""
    broker = Mosquitto.start()
    try:
        yield broker
    finally:
        os.kill(broker.process.pid, signal.SIGCONT) if broker.process.poll() is None else None
        broker.stop()


@pytest.fixture
async def proxy(mosquitto: Mosquitto) -> AsyncIterator[Proxy]:
    async with Proxy(mosquitto.port) as relay:
        yield relay


# -- QoS 1 at-least-once ---------------------------------------------------------


async def test_unacked_qos1_message_is_redelivered_to_the_next_session(mosquitto: Mosquitto, topic: str) -> None:
    config = hub_config(mosquitto)
    first = Inbox()
    async with Hub(config, f"{topic}-c", first) as hub:
        await ready_hub(hub, topic)
        await publish(mosquitto, topic, b"one")
        [delivery] = await first.wait_for(1)
        assert (delivery.topic, delivery.payload, delivery.qos) == (topic, b"one", 1)
    again = Inbox()
    async with Hub(config, f"{topic}-c", again) as hub:
        [redelivered] = await again.wait_for(1)
        assert redelivered.payload == b"one"
        assert redelivered.generation == hub.generation


async def test_acked_qos1_message_is_not_redelivered(mosquitto: Mosquitto, topic: str) -> None:
    config = hub_config(mosquitto)
    inbox = Inbox()
    async with Hub(config, f"{topic}-c", inbox) as hub:
        inbox.acking = hub
        await ready_hub(hub, topic)
        await publish(mosquitto, topic, b"one")
        await inbox.wait_for(1)
    later = Inbox()
    async with Hub(config, f"{topic}-c", later) as hub:
        await ready_hub(hub, topic)
        await publish(mosquitto, topic, b"marker")
        await later.wait_for(1)
        assert later.payloads == [b"marker"]


async def test_ack_after_a_reconnect_is_not_sent_on_the_new_connection(
    mosquitto: Mosquitto, proxy: Proxy, topic: str
) -> None:
    config = hub_config(mosquitto, port=proxy.port)
    inbox = Inbox()
    async with Hub(config, f"{topic}-c", inbox) as hub:
        await ready_hub(hub, topic)
        await publish(mosquitto, topic, b"one")
        [old] = await inbox.wait_for(1)
        proxy.cut()
        await wait_generation(hub, old.generation + 1)
        [_, redelivered] = await inbox.wait_for(2)
        assert redelivered.payload == b"one" and redelivered.generation > old.generation
        hub.ack(old)  # stale: must be a no-op
    third = Inbox()
    async with Hub(config, f"{topic}-c", third) as hub:
        [again] = await third.wait_for(1)
        assert again.payload == b"one"


async def test_after_stop_delivering_messages_are_neither_delivered_nor_acked(
    mosquitto: Mosquitto, topic: str
) -> None:
    config = hub_config(mosquitto)
    inbox = Inbox()
    async with Hub(config, f"{topic}-c", inbox) as hub:
        await ready_hub(hub, topic)
        hub.stop_delivering()
        await publish(mosquitto, topic, b"late")
        await hub.publish(f"{topic}/flush", b"", 1)  # a round trip: "late" has reached us by now
        assert inbox.deliveries == []
    later = Inbox()
    async with Hub(config, f"{topic}-c", later) as hub:
        assert [d.payload for d in await later.wait_for(1)] == [b"late"]


async def test_a_failing_on_message_does_not_break_the_connection(mosquitto: Mosquitto, topic: str) -> None:
    seen: list[bytes] = []

    def explode(delivery: Delivery) -> None:
        seen.append(delivery.payload)
        raise RuntimeError("router bug")

    async with Hub(hub_config(mosquitto), f"{topic}-c", explode) as hub:
        await ready_hub(hub, topic, qos=0)
        generation = hub.generation
        await publish(mosquitto, topic, b"a", b"b", qos=0)
        async with asyncio.timeout(WAIT):
            while len(seen) < 2:
                await asyncio.sleep(0.01)
        assert hub.connected and hub.generation == generation


# -- publishing ------------------------------------------------------------------


async def test_publish_qos1_waits_for_the_puback(private: Mosquitto, topic: str) -> None:
    async with Hub(hub_config(private), f"{topic}-c", Inbox()) as hub:
        await ready_hub(hub, topic)
        await hub.publish(topic, b"fine", 1)
        os.kill(private.process.pid, signal.SIGSTOP)  # the broker is alive but answers nothing
        try:
            with pytest.raises(HubError) as caught:
                await hub.publish(topic, b"stalled", 1, timeout=0.3)
            assert not isinstance(caught.value, HubDisconnected)
            pending = asyncio.create_task(hub.publish(topic, b"later", 1, timeout=WAIT))
            await asyncio.sleep(0.2)
            assert not pending.done()
        finally:
            os.kill(private.process.pid, signal.SIGCONT)
        await pending


async def test_publish_fails_promptly_when_the_broker_dies(private: Mosquitto, topic: str) -> None:
    async with Hub(hub_config(private), f"{topic}-c", Inbox()) as hub:
        await ready_hub(hub, topic)
        os.kill(private.process.pid, signal.SIGSTOP)
        pending = asyncio.create_task(hub.publish(topic, b"doomed", 1, timeout=30))
        await asyncio.sleep(0.1)
        private.process.kill()
        started = time.monotonic()
        with pytest.raises(HubDisconnected):
            await pending
        assert time.monotonic() - started < 3
        assert not hub.connected
        with pytest.raises(HubDisconnected):
            await hub.publish(topic, b"while down", 1)


async def test_a_silent_broker_is_detected_by_keepalive(private: Mosquitto, topic: str) -> None:
    async with Hub(hub_config(private, keepalive=1.0), f"{topic}-c", Inbox()) as hub:
        await ready_hub(hub, topic)
        os.kill(private.process.pid, signal.SIGSTOP)
        pending = asyncio.create_task(hub.publish(topic, b"unanswered", 1, timeout=30))
        with pytest.raises(HubDisconnected):
            async with asyncio.timeout(6):
                await pending
        assert not hub.connected


async def test_publish_qos0_returns_once_written(mosquitto: Mosquitto, topic: str) -> None:
    inbox = Inbox()
    async with Hub(hub_config(mosquitto), f"{topic}-c", inbox) as hub:
        await ready_hub(hub, topic, qos=0)
        await hub.publish(topic, b"zero", 0)
        [delivery] = await inbox.wait_for(1)
        assert (delivery.payload, delivery.qos) == (b"zero", 0)
        hub.ack(delivery)  # a no-op for QoS 0


async def test_bad_topics_and_qos_are_hub_errors(mosquitto: Mosquitto, topic: str) -> None:
    async with Hub(hub_config(mosquitto), f"{topic}-c", Inbox()) as hub:
        await ready_hub(hub, topic)
        with pytest.raises(HubError, match="cannot publish"):
            await hub.publish(f"{topic}/+", b"x", 1)
        with pytest.raises(HubError, match="QoS"):
            await hub.subscribe(topic, 3)
        with pytest.raises(HubError, match="cannot subscribe"):
            await hub.subscribe(f"{topic}/#/x", 1)
        with pytest.raises(HubError, match="cannot subscribe"):
            await hub.subscribe("", 1)
        await hub.publish(topic, b"still fine", 1)


async def test_a_bad_filter_given_while_disconnected_is_refused_at_once(topic: str) -> None:
    hub = Hub(HubConfig(port=1), f"{topic}-c", Inbox())
    with pytest.raises(HubError, match="cannot subscribe"):
        await hub.subscribe(f"{topic}/a+", 1)


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(HubError, match="scheme"):
        Hub(HubConfig(scheme="mqtts"), "c", Inbox())


async def test_publish_before_connecting_raises_hub_disconnected(topic: str) -> None:
    hub = Hub(HubConfig(port=1), f"{topic}-c", Inbox())
    with pytest.raises(HubDisconnected):
        await hub.publish(topic, b"x", 1)


# -- reconnection ----------------------------------------------------------------


async def test_reconnects_and_resubscribes_after_the_broker_restarts(private: Mosquitto, topic: str) -> None:
    inbox = Inbox()
    async with Hub(hub_config(private), f"{topic}-c", inbox) as hub:
        inbox.acking = hub
        await ready_hub(hub, topic)
        generation = hub.generation
        restarted = restart(private)  # persistence off: the broker forgot the subscription
        private.process = restarted.process
        await wait_generation(hub, generation + 1)
        await publish(private, topic, b"after restart")
        assert [d.payload for d in await inbox.wait_for(1)] == [b"after restart"]


async def test_subscribe_while_disconnected_is_applied_on_connect(private: Mosquitto, topic: str) -> None:
    private.process.terminate()
    private.process.wait(timeout=5)
    inbox = Inbox()
    async with Hub(hub_config(private, interval=0.5), f"{topic}-c", inbox) as hub:
        async with asyncio.timeout(1):
            await hub.subscribe(topic, 0)  # returns at once: remembered for the connection
        async with asyncio.timeout(WAIT):
            while hub.last_error is None:
                await asyncio.sleep(0.02)
        assert not hub.connected and "cannot connect" in str(hub.last_error)
        private.process = restart(private).process
        async with asyncio.timeout(WAIT):
            await hub.wait_ready()
        await publish(private, topic, b"hello", qos=0)
        assert [d.payload for d in await inbox.wait_for(1)] == [b"hello"]


async def test_unsubscribe_stops_deliveries(mosquitto: Mosquitto, topic: str) -> None:
    inbox = Inbox()
    async with Hub(hub_config(mosquitto), f"{topic}-c", inbox) as hub:
        await ready_hub(hub, f"{topic}/a", qos=0)
        await hub.subscribe(f"{topic}/b", 0)
        await hub.unsubscribe(f"{topic}/a")
        await publish(mosquitto, f"{topic}/a", b"gone", qos=0)
        await publish(mosquitto, f"{topic}/b", b"kept", qos=0)
        assert [d.payload for d in await inbox.wait_for(1)] == [b"kept"]


# -- throughput ------------------------------------------------------------------


async def test_5000_qos1_messages_round_trip_without_loss(mosquitto: Mosquitto, topic: str) -> None:
    count = 5000
    got: set[bytes] = set()
    done = asyncio.Event()
    hub: Hub

    def on_message(delivery: Delivery) -> None:
        got.add(delivery.payload)
        hub.ack(delivery)
        if len(got) == count:
            done.set()

    hub = Hub(hub_config(mosquitto), f"{topic}-c", on_message)
    async with hub:
        await ready_hub(hub, topic)
        started = time.perf_counter()
        await asyncio.gather(*(hub.publish(topic, b"%d" % i, 1) for i in range(count)))
        async with asyncio.timeout(30):
            await done.wait()
        elapsed = time.perf_counter() - started
    assert got == {b"%d" % i for i in range(count)}
    logging.getLogger("test").warning("5000 QoS 1 round trips: %.0f msg/s", count / elapsed)


# -- authentication and TLS ------------------------------------------------------

# mosquitto started as root switches to the mosquitto user unless told not to,
# and then cannot read the test's private files.
AS_ME = "user root\n"


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "edge", "s3cret-pw"], check=True)
    broker = Mosquitto.start(f"allow_anonymous false\npassword_file {passwords}\n{AS_ME}")
    try:
        yield broker
    finally:
        broker.stop()


async def test_username_and_password_connect(password_broker: Mosquitto, topic: str) -> None:
    config = hub_config(password_broker, username="edge", password="s3cret-pw")
    inbox = Inbox()
    async with Hub(config, f"{topic}-c", inbox) as hub:
        await ready_hub(hub, topic)
        await hub.publish(topic, b"authenticated", 1)
        assert [d.payload for d in await inbox.wait_for(1)] == [b"authenticated"]


async def test_a_wrong_password_is_reported_and_never_logged(
    password_broker: Mosquitto, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = hub_config(password_broker, username="edge", password="wrong-pw-xyz")
    caplog.set_level(logging.DEBUG)
    async with Hub(config, f"{topic}-c", Inbox()) as hub:
        async with asyncio.timeout(WAIT):
            while hub.last_error is None:
                await asyncio.sleep(0.02)
        assert not hub.connected
        assert "refused" in str(hub.last_error).lower() or "not authori" in str(hub.last_error).lower()
    assert f"{topic}-c" in caplog.text  # the clientid names the connection
    assert "wrong-pw-xyz" not in caplog.text


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue(directory: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    """A key and a certificate for ``subject`` signed by the test CA in ``directory``."""
    key, csr, cert, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "ext"))
    ext.write_text(extensions)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={subject}")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(directory / "ca.pem"),
            "-CAkey", str(directory / "ca.key"), "-CAcreateserial", "-out", str(cert),
            "-days", "1", "-extfile", str(ext))
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.pem"),
            "-days", "1", "-subj", "/CN=edgefn-test-ca")
    issue(directory, "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\n")
    issue(directory, "client", "edgefn-client", "extendedKeyUsage=clientAuth\n")
    return directory


def tls_broker(pki: Path, mutual: bool) -> Mosquitto:
    return Mosquitto.start(
        f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\nkeyfile {pki / 'server.key'}\n"
        f"require_certificate {'true' if mutual else 'false'}\n{AS_ME}"
    )


async def test_tls_with_the_hub_ca(pki: Path, topic: str) -> None:
    broker = tls_broker(pki, mutual=False)
    try:
        config = hub_config(broker, scheme="ssl", ca=pki / "ca.pem")
        inbox = Inbox()
        async with Hub(config, f"{topic}-c", inbox) as hub:
            await ready_hub(hub, topic)
            await hub.publish(topic, b"private", 1)
            assert [d.payload for d in await inbox.wait_for(1)] == [b"private"]
        # Without our CA the system CAs do not trust the broker.
        async with Hub(hub_config(broker, scheme="ssl"), f"{topic}-d", Inbox()) as hub:
            async with asyncio.timeout(WAIT):
                while hub.last_error is None:
                    await asyncio.sleep(0.02)
            assert "certificate" in str(hub.last_error).lower() and not hub.connected
    finally:
        broker.stop()


async def test_mutual_tls_with_a_client_certificate(pki: Path, topic: str) -> None:
    broker = tls_broker(pki, mutual=True)
    try:
        config = hub_config(broker, scheme="ssl", ca=pki / "ca.pem",
                            cert=pki / "client.pem", key=pki / "client.key")
        async with Hub(config, f"{topic}-c", Inbox()) as hub:
            await ready_hub(hub, topic)
            await hub.publish(topic, b"mutual", 1)
        anonymous = hub_config(broker, scheme="ssl", ca=pki / "ca.pem")
        async with Hub(anonymous, f"{topic}-d", Inbox()) as hub:
            async with asyncio.timeout(WAIT):
                while hub.last_error is None:
                    await asyncio.sleep(0.02)
            assert not hub.connected
    finally:
        broker.stop()


async def test_a_missing_ca_file_fails_on_entry(tmp_path: Path, topic: str) -> None:
    config = HubConfig(scheme="ssl", ca=tmp_path / "nope.pem")
    with pytest.raises(HubError, match="TLS"):
        async with Hub(config, f"{topic}-c", Inbox()):
            pass


async def test_websockets(topic: str) -> None:
    # This mosquitto build cannot listen on websockets; amqtt can.
    from amqtt.broker import Broker

    port = free_port()
    broker = Broker({
        "listeners": {"default": {"type": "ws", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    try:
        config = HubConfig(scheme="ws", port=port, websocket_path="/mqtt")
        inbox = Inbox()
        async with Hub(config, f"{topic}-c", inbox) as hub:
            inbox.acking = hub
            await ready_hub(hub, topic)
            await hub.publish(topic, b"over websockets", 1)
            assert [d.payload for d in await inbox.wait_for(1)] == [b"over websockets"]
    finally:
        await broker.shutdown()
