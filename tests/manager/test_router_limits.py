"""A result larger than the hub takes becomes a Runtime.MessageTooLarge envelope, never silence."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess, python_function, write_config
from support.mqtt import Probe

pytestmark = pytest.mark.timeout(60)


async def test_a_result_over_hub_message_length_max_is_a_message_too_large_envelope(
    mosquitto: Mosquitto, topic: str, tmp_path: Path
) -> None:
    path = write_config(tmp_path, {
        "hub": {"address": f"tcp://127.0.0.1:{mosquitto.port}", "clientid": f"limits-{topic[-12:]}",
                "message": {"length": {"max": "2k"}}},
        "rules": [{"subscribe": {"topic": f"{topic}/in", "qos": 1}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}/out", "qos": 1}, "error": {"topic": f"{topic}/err", "qos": 1}}],
        "functions": [python_function("echo", "e2e", "index.echo")],
    })
    with ManagerProcess(path) as manager:
        manager.wait_ready()
        async with Probe(mosquitto.port, [f"{topic}/out", f"{topic}/err"]) as probe:
            await probe.publish(f"{topic}/in", orjson.dumps("x" * 3000), qos=1)
            await probe.publish(f"{topic}/in", orjson.dumps("small"), qos=1)
            first, second = await probe.collect(2)
            await probe.nothing(0.5)  # the big input was acknowledged: no redelivery, no second envelope
        assert manager.stop() == 0
    by_topic = {str(message.topic): message.payload for message in (first, second)}
    assert by_topic[f"{topic}/out"] == b'"small"'
    envelope = orjson.loads(by_topic[f"{topic}/err"])
    assert envelope["errorType"] == "Runtime.MessageTooLarge"
    assert "hub.message.length.max (2048 bytes)" in envelope["errorMessage"]
    assert envelope["functionMessage"]["PayloadTruncated"] is True
    assert len(base64.b64decode(envelope["functionMessage"]["Payload"])) == 1024


@pytest.mark.parametrize(("written", "expected"), [(None, 268_435_455), ("255m", 255 * 1024 * 1024), ("1k", 1024)])
def test_hub_message_length_max_defaults_to_mqtts_largest(tmp_path: Path, written: str | None, expected: int) -> None:
    from edgefn.manager.config import load_config

    hub = {"address": "tcp://127.0.0.1:1883"} | ({"message": {"length": {"max": written}}} if written else {})
    path = write_config(tmp_path, {"hub": hub, "functions": [python_function("f", "e2e", "index.echo")]})
    assert load_config(path, environ={}).hub.message_max == expected


@pytest.mark.parametrize("written", ["10", "300m", "lots"])
def test_hub_message_length_max_out_of_range_is_a_problem(tmp_path: Path, written: str) -> None:
    from edgefn.manager.config import ConfigError, load_config

    path = write_config(tmp_path, {"hub": {"address": "tcp://127.0.0.1:1883", "message": {"length": {"max": written}}},
                                   "functions": [python_function("f", "e2e", "index.echo")]})
    with pytest.raises(ConfigError, match=r"hub\.message\.length\.max"):
        load_config(path, environ={})
