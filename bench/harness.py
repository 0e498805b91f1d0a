"""What the benchmarks share: a tuned mosquitto, the systems under test, a load generator.

All processes share the machine's cores (2 here): the OS schedules the broker,
the load generator and the system under test freely; nothing is pinned, so a
ratio measured in one run compares like with like.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

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
def edgefn(port: int, rules: list[dict], functions: list[dict], folder: Path,
           workers: int = 1, loop: str = "asyncio") -> Iterator[subprocess.Popen[bytes]]:
    """``edgefn run`` with these rules and functions (and ``workers``) on the broker at ``port``;
    ``loop="uvloop"`` runs the manager on uvloop (bench/uvloop_run.py). Its log goes to a file in
    ``folder`` at level info, or ``$BENCH_LOG`` (``BENCH_LOG=debug`` shows why a start failed)."""
    config = folder / f"bench-{uuid.uuid4().hex[:6]}.yml"
    config.write_text(yaml.safe_dump({
        "hub": {"address": f"tcp://127.0.0.1:{port}", "clientid": f"bench-{uuid.uuid4().hex[:6]}"},
        "rules": rules, "functions": functions, "logger": {"level": os.environ.get("BENCH_LOG", "info")},
        **({"workers": workers} if workers > 1 else {}),
    }))
    log = folder / f"{config.stem}.log"  # a file, not a pipe: nobody has to keep draining it
    with open(log, "wb") as stderr:
        command = [str(BENCH / "uvloop_run.py")] if loop == "uvloop" else ["-m", "edgefn"]
        # From /: edgefn as installed, not the repository's source folders (cold_start.py says why).
        process = subprocess.Popen([sys.executable, *command, "run", str(config)], cwd="/",
                                   stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b"edgefn ready" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"edgefn did not get ready:\n{log.read_text()}")
            time.sleep(0.05)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def rule(source: str, function: str, target: str) -> dict:
    return {"subscribe": {"topic": source, "qos": 1}, "function": {"name": function},
            "publish": {"topic": target, "qos": 1}}


async def drive(port: int, source: str, target: str, count: int, *, rate: float | None = None,
                name: str = "", pad: int = 0) -> Figures:
    """Publish ``count`` QoS 1 messages to ``source`` and time their arrival on ``target``.

    The load generator is mosquitto's own C clients (``mosquitto_pub -l`` fed
    line by line, ``mosquitto_sub -F '%U %p'`` stamping each arrival), so it
    costs far less CPU than the systems it measures. ``rate`` paces the
    publisher (msg/s); without it, lines are written as fast as the pipe takes
    them. Each payload carries its send time, so latency is per message.
    """
    marker = f"ready-{uuid.uuid4().hex[:8]}"
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "--nodelay", "-p", str(port), "-t", target, "-q", "1", "-F", "%U %p",
        stdout=asyncio.subprocess.PIPE, limit=max(2**16, 2 * pad + 4096))  # a line per message, however big
    pub = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "--nodelay", "-p", str(port), "-t", source, "-q", "1", "-l", stdin=asyncio.subprocess.PIPE)
    assert sub.stdout is not None and pub.stdin is not None
    latencies: list[float] = []
    try:
        await _wait_subscribed(port, target, marker, sub.stdout)
        await _wait_through(pub.stdin, marker, sub.stdout)  # the publisher is connected, the path is warm
        started = time.time()
        writer = asyncio.create_task(_feed(pub.stdin, count, rate, started, pad), name="bench-feed")
        async with asyncio.timeout(max(60.0, count / 200)):
            while len(latencies) < count:
                line = await sub.stdout.readline()
                if not line:
                    break
                arrived, _, payload = line.partition(b" ")
                if marker.encode() in payload:
                    continue
                latencies.append(float(arrived) - orjson.loads(payload)["t"])
        elapsed = time.time() - started
        await writer
    finally:
        for process in (pub, sub):
            if process.returncode is None:
                process.kill()
            await process.wait()
    return Figures(name, len(latencies), elapsed, latencies)


async def _wait_subscribed(port: int, topic: str, marker: str, stdout: asyncio.StreamReader) -> None:
    """Publish ``marker`` to ``topic`` until the subscriber prints it: then it is subscribed."""
    async with asyncio.timeout(30):
        while True:
            process = await asyncio.create_subprocess_exec("mosquitto_pub", "-p", str(port), "-t", topic,
                                                           "-m", marker)
            await process.wait()
            try:
                async with asyncio.timeout(0.5):
                    if marker.encode() in await stdout.readline():
                        return
            except TimeoutError:
                continue


async def _wait_through(stdin: asyncio.StreamWriter, marker: str, stdout: asyncio.StreamReader) -> None:
    """Send ``marker`` through the publisher and the system under test until it comes out.

    Otherwise the clock would start while mosquitto_pub is still connecting, and
    the first messages would carry its connection time as latency.
    """
    async with asyncio.timeout(30):
        # JSON, so that every system under test (SQL filters too) passes it on.
        stdin.write(orjson.dumps({"n": 0, "t": time.time(), "marker": marker}) + b"\n")
        await stdin.drain()
        while marker.encode() not in await stdout.readline():
            pass


async def _feed(stdin: asyncio.StreamWriter, count: int, rate: float | None, started: float, pad: int = 0) -> None:
    filler = "x" * pad  # makes each message about ``pad`` bytes larger
    for number in range(count):
        if rate:
            delay = started + number / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        message = {"n": number, "t": time.time(), "pad": filler} if pad else {"n": number, "t": time.time()}
        stdin.write(orjson.dumps(message) + b"\n")
        await stdin.drain()
    stdin.close()


def ratio(figures: Figures, baseline: Figures) -> str:
    return f"{figures.rate / baseline.rate:.2f}x" if baseline.rate else "n/a"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
