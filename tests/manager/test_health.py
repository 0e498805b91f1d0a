"""The metrics endpoint: /metrics (Prometheus text), /healthz, /readyz; and gRPC health follows readiness."""

from __future__ import annotations

import asyncio
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import paho.mqtt.publish as mqtt_publish
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from edgefn.manager.app import Manager
from edgefn.manager.config import MetricsConfig, load_config
from edgefn.manager.exposition import NAMES
from edgefn.manager.health import HealthServer, MetricsError
from edgefn.manager.metrics import Metrics
from support.broker import Mosquitto, free_port
from support.manager import ManagerProcess, python_function, write_config

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StandIn:
    """What the endpoint reads of a manager."""

    metrics: Metrics = field(default_factory=Metrics)
    connections: dict[str, tuple[object, object]] = field(default_factory=dict)
    ready: bool = False


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


async def test_readyz_follows_readiness_and_healthz_answers_while_the_loop_serves() -> None:
    manager = StandIn()
    server = HealthServer(MetricsConfig("127.0.0.1", 0), manager)
    await server.start()
    try:
        assert await asyncio.to_thread(get, server.port, "/healthz") == (200, "ok\n")
        assert await asyncio.to_thread(get, server.port, "/readyz") == (503, "not ready\n")
        manager.ready = True
        assert await asyncio.to_thread(get, server.port, "/readyz") == (200, "ready\n")
        assert (await asyncio.to_thread(get, server.port, "/nope"))[0] == 404
    finally:
        await server.stop()


async def test_metrics_are_read_from_the_counters_at_scrape_time() -> None:
    manager = StandIn()
    stats = manager.metrics.function("f")
    stats.observe(0.003, False)
    stats.observe(0.2, "ValueError")
    stats.observe(0.2, "ValueError")
    stats.dropped = 4
    stats.fired(2, late=True)
    rule = manager.metrics.rule(0, "f", "edgefn")
    rule.inputs, rule.outputs, rule.envelopes = 3, 1, 2
    server = HealthServer(MetricsConfig("127.0.0.1", 0), manager)
    await server.start()
    try:
        status, text = await asyncio.to_thread(get, server.port, "/metrics")
    finally:
        await server.stop()
    assert status == 200
    found = samples(text)
    assert found[("edgefn_function_calls_total", (("error_type", ""), ("function", "f"), ("outcome", "ok")))] == 1
    assert found[("edgefn_function_calls_total",
                  (("error_type", "ValueError"), ("function", "f"), ("outcome", "error")))] == 2
    assert found[("edgefn_function_call_duration_seconds_bucket", (("function", "f"), ("le", "0.005")))] == 1
    assert found[("edgefn_function_call_duration_seconds_bucket", (("function", "f"), ("le", "0.25")))] == 3
    assert found[("edgefn_function_call_duration_seconds_count", (("function", "f"),))] == 3
    assert found[("edgefn_function_qos0_shed_total", (("function", "f"),))] == 4
    assert found[("edgefn_schedule_late_fires_total", (("function", "f"), ("rule", "2")))] == 1
    assert found[("edgefn_rule_envelopes_total", (("clientid", "edgefn"), ("function", "f"), ("rule", "0")))] == 2
    assert found[("edgefn_ready", ())] == 0
    assert "python_gc" not in text and "process_" not in text  # a private registry: ours only


def test_docs_metrics_md_lists_every_metric_with_its_labels() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    for name, (kind, labels, _) in NAMES.items():
        assert f"| `{name}` | {kind} | {labels or '—'} |" in text, name


async def test_a_taken_address_is_a_one_line_error() -> None:
    first = HealthServer(MetricsConfig("127.0.0.1", 0), StandIn())
    await first.start()
    try:
        with pytest.raises(MetricsError, match="metrics.address 127.0.0.1:.*cannot listen"):
            await HealthServer(MetricsConfig("127.0.0.1", first.port), StandIn()).start()
    finally:
        await first.stop()


def test_a_manager_is_not_ready_while_starting_or_draining(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"functions": [{"name": "f", "runtime": "sql", "handler": "select 1 as a"}]})
    manager = Manager(load_config(path))
    try:
        assert not manager.ready and manager.state == "starting"
        manager.state = "ready"
        assert manager.ready  # no connection is down
        manager.state = "draining"
        assert not manager.ready
    finally:
        shutil.rmtree(manager._socket_dir, ignore_errors=True)  # noqa: SLF001


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def test_a_running_manager_serves_metrics_and_readiness_follows_its_hub(tmp_path: Path, topic: str) -> None:
    broker = Mosquitto.start()
    metrics_port, server_port = free_port(), free_port()
    path = write_config(tmp_path, {
        "hub": {"address": broker.address, "interval": "500ms"},
        "server": {"address": f"127.0.0.1:{server_port}"},
        "metrics": {"address": f"127.0.0.1:{metrics_port}"},
        "rules": [{"subscribe": {"topic": f"{topic}/in", "qos": 1}, "function": {"name": "echo"},
                   "publish": {"topic": f"{topic}/out", "qos": 1}}],
        "functions": [python_function("echo", "e2e", "index.echo", instance={"min": 1})],
    })
    try:
        with ManagerProcess(path) as manager:
            manager.wait_ready(30)
            assert get(metrics_port, "/readyz") == (200, "ready\n")
            assert health(f"127.0.0.1:{server_port}") == health_pb2.HealthCheckResponse.SERVING
            mqtt_publish.single(f"{topic}/in", b'{"n": 1}', qos=1, port=broker.port)
            calls = ("edgefn_function_calls_total", (("error_type", ""), ("function", "echo"), ("outcome", "ok")))
            eventually(lambda: samples(get(metrics_port, "/metrics")[1]).get(calls) == 1, "one call counted")
            found = samples(get(metrics_port, "/metrics")[1])
            labels = (("clientid", "edgefn"), ("function", "echo"), ("rule", "0"))
            assert found[("edgefn_rule_inputs_total", labels)] == 1
            eventually(lambda: samples(get(metrics_port, "/metrics")[1]).get(("edgefn_rule_outputs_total", labels))
                       == 1, "one output counted")
            assert found[("edgefn_connection_up", (("clientid", "edgefn"),))] == 1
            assert found[("edgefn_function_instances", (("function", "echo"), ("state", "idle")))] == 1
            assert found[("edgefn_function_instances", (("function", "echo"), ("state", "starting")))] == 0
            broker.stop()
            eventually(lambda: get(metrics_port, "/readyz")[0] == 503, "not ready with the hub down")
            assert get(metrics_port, "/healthz") == (200, "ok\n")
            assert health(f"127.0.0.1:{server_port}") == health_pb2.HealthCheckResponse.NOT_SERVING
            up = samples(get(metrics_port, "/metrics")[1])[("edgefn_connection_up", (("clientid", "edgefn"),))]
            assert up == 0
            assert manager.stop() == 0
    finally:
        broker.stop()
