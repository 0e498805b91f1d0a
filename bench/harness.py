"""What the benchmarks share: a tuned mosquitto, the systems under test, a load generator.

All processes share the machine's cores (2 here): the OS schedules the broker,
the load generator and the system under test freely; nothing is pinned, so a
ratio measured in one run compares like with like.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

import aiomqtt
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.broker import Mosquitto  # noqa: E402  (one broker helper for tests and benches)

BENCH = Path(__file__).resolve().parent


@dataclass
class Figures:
    """One measured run."""

    name: str
    messages: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    def line(self) -> str:
        return (f"{self.name:<28} {self.rate:9.0f} msg/s   p50 {self.percentile(0.5):7.2f} ms"
                f"   p99 {self.percentile(0.99):7.2f} ms   ({self.messages} msgs in {self.seconds:.2f}s)")


@contextmanager
def broker() -> Iterator[Mosquitto]:
    """A mosquitto tuned like the tests' (no per-client queue limit, TCP_NODELAY)."""
    instance = Mosquitto.start()
    try:
        yield instance
    finally:
        instance.stop()


@contextmanager
def forwarder(port: int, source: str, target: str) -> Iterator[subprocess.Popen[bytes]]:
    """The bare aiomqtt forwarder in its own process."""
    process = subprocess.Popen([sys.executable, str(BENCH / "forwarder.py"), str(port), source, target],
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready", "forwarder did not start"
        yield process
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def edgefn(port: int, rules: list[dict], functions: list[dict], folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``edgefn run`` with these rules and functions on the broker at ``port``."""
    config = folder / f"bench-{uuid.uuid4().hex[:6]}.yml"
    config.write_text(yaml.safe_dump({
        "hub": {"address": f"tcp://127.0.0.1:{port}", "clientid": f"bench-{uuid.uuid4().hex[:6]}"},
        "rules": rules, "functions": functions, "logger": {"level": "warn"},
    }))
    process = subprocess.Popen([sys.executable, "-m", "edgefn", "run", str(config)],
                               stderr=subprocess.PIPE, env={**os.environ}, start_new_session=True)
    try:
        assert process.stderr is not None
        for raw in process.stderr:
            if b"edgefn ready" in raw:
                break
        else:
            raise RuntimeError("edgefn exited before it was ready")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def rule(source: str, function: str, target: str) -> dict:
    return {"subscribe": {"topic": source, "qos": 1}, "function": {"name": function},
            "publish": {"topic": target, "qos": 1}}


def client(port: int, name: str) -> aiomqtt.Client:
    mqtt = aiomqtt.Client("127.0.0.1", port, identifier=f"{name}-{uuid.uuid4().hex[:6]}",
                          socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                          max_inflight_messages=1000)
    mqtt.pending_calls_threshold = 1_000_000
    return mqtt


async def drive(port: int, source: str, target: str, count: int, *, rate: float | None = None,
                window: int = 500, name: str = "") -> Figures:
    """Publish ``count`` QoS 1 messages to ``source`` and time their arrival on ``target``.

    ``rate`` paces the publisher (msg/s); without it, up to ``window`` are in flight.
    Each payload carries its send time, so latency is measured per message.
    """
    latencies: list[float] = []
    done = asyncio.Event()
    async with client(port, "bench-sub") as sub, client(port, "bench-pub") as pub:
        await sub.subscribe(target, qos=1)

        async def receive() -> None:
            async for message in sub.messages:
                sent = orjson.loads(message.payload)["t"]
                latencies.append(time.perf_counter() - sent)
                if len(latencies) >= count:
                    done.set()
                    return

        reader = asyncio.create_task(receive(), name="bench-receive")
        gate = asyncio.Semaphore(window)
        tasks: set[asyncio.Task[None]] = set()

        async def send(number: int) -> None:
            try:
                await pub.publish(source, orjson.dumps({"n": number, "t": time.perf_counter()}), qos=1)
            finally:
                gate.release()

        started = time.perf_counter()
        for number in range(count):
            if rate:
                delay = started + number / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await gate.acquire()
            task = asyncio.create_task(send(number))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        try:
            await asyncio.wait_for(done.wait(), timeout=max(60.0, count / 200))
        finally:
            reader.cancel()
        elapsed = time.perf_counter() - started
    return Figures(name, len(latencies), elapsed, latencies)


def ratio(figures: Figures, baseline: Figures) -> str:
    return f"{figures.rate / baseline.rate:.2f}x" if baseline.rate else "n/a"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
