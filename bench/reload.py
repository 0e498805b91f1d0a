"""Hot reload: time from saving a function's file to the first result from the new code.

Usage: python bench/reload.py [--saves N] [--interval MS] [--rename]

``edgefn dev`` runs on a private mosquitto; a publisher sends a QoS 1 message
every ``--interval`` ms (10 by default) and each answer carries the code's
VERSION. Each save rewrites index.py with the next VERSION (in place, or with
``--rename`` as an editor's write-temp-then-rename) and the clock stops at the
first answer from that version, so the figure includes up to one interval of
publishing granularity. Target: p50 ≤ 500 ms. Broker, load generator, manager
and runtimes share this machine's cores (nothing pinned).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import aiomqtt
import orjson
import yaml

from harness import broker

TARGET_MS = 500.0
SOURCE = '''"""The reload benchmark's function: answers with the code's version."""

VERSION = {version}


def handler(event, context):
    return {{"version": VERSION, "n": event["n"]}}
'''


def save(codedir: Path, version: int, rename: bool) -> None:
    text = SOURCE.format(version=version)
    if not rename:
        (codedir / "index.py").write_text(text)
        return
    temp = codedir / ".index.py.swp-save"
    temp.write_text(text)
    os.replace(temp, codedir / "index.py")


def client(port: int, name: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, identifier=f"{name}-{uuid.uuid4().hex[:6]}")


@contextmanager
def dev(port: int, folder: Path, source: str, target: str) -> Iterator[list[str]]:
    """``edgefn dev`` on one rule; yields its log lines (collected by a thread) once it watches."""
    codedir = folder / "fn"
    config = folder / "edgefn.yml"
    config.write_text(yaml.safe_dump({
        "hub": {"address": f"tcp://127.0.0.1:{port}", "clientid": f"bench-{uuid.uuid4().hex[:6]}"},
        "rules": [{"subscribe": {"topic": source, "qos": 1}, "function": {"name": "fn"},
                   "publish": {"topic": target, "qos": 1}}],
        "functions": [{"name": "fn", "runtime": "python", "handler": "index.handler", "codedir": str(codedir),
                       "instance": {"min": 1}}],
        "logger": {"level": "info"},
    }))
    process = subprocess.Popen([sys.executable, "-m", "edgefn", "dev", str(config)], stderr=subprocess.PIPE,
                               start_new_session=True)
    lines: list[str] = []
    watching = threading.Event()

    def read() -> None:  # drain stderr for the whole run: a full pipe would stall the manager
        assert process.stderr is not None
        for raw in process.stderr:
            lines.append(raw.decode(errors="replace").rstrip())
            if "edgefn.reload: watching" in lines[-1]:
                watching.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not watching.wait(60):
            raise RuntimeError("edgefn dev did not start:\n" + "\n".join(lines))
        time.sleep(0.2)  # the inotify watches are created right after that line
        yield lines
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        reader.join(5)


def reloaded_at(log: list[str], number: int) -> float | None:
    """Wall-clock time of the manager's ``number``-th "reloaded" line (its text log has ms)."""
    lines = [line for line in list(log) if "edgefn.manager: reloaded " in line]
    if len(lines) < number:
        return None
    stamp = datetime.strptime(lines[number - 1][:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


async def measure(port: int, codedir: Path, source: str, target: str, saves: int, interval: float,
                  rename: bool, log: list[str]) -> list[float]:
    """Save ``saves`` times while publishing; return each save → first new answer, in seconds."""
    first_seen: dict[int, float] = {}
    changed = asyncio.Event()
    async with client(port, "reload-sub") as sub, client(port, "reload-pub") as pub:
        await sub.subscribe(target, qos=1)

        async def receive() -> None:
            async for message in sub.messages:
                version = orjson.loads(message.payload)["version"]
                if version not in first_seen:
                    first_seen[version] = time.perf_counter()
                    changed.set()

        async def publish() -> None:
            number = 0
            while True:
                number += 1
                await pub.publish(source, orjson.dumps({"n": number}), qos=1)
                await asyncio.sleep(interval)

        tasks = [asyncio.create_task(receive(), name="reload-receive"),
                 asyncio.create_task(publish(), name="reload-publish")]
        try:
            await wait_for_version(first_seen, changed, 1, 30)
            latencies = []
            for version in range(2, saves + 2):
                await asyncio.sleep(0.5)  # the previous pool retires; each save starts from a steady state
                saved, saved_wall = time.perf_counter(), time.time()
                await asyncio.to_thread(save, codedir, version, rename)
                await wait_for_version(first_seen, changed, version, 30)
                latencies.append(first_seen[version] - saved)
                applied = reloaded_at(log, version - 1)
                split = f"(reload applied after {(applied - saved_wall) * 1000:4.0f} ms)" if applied else ""
                print(f"  save {version - 1:>2}: {latencies[-1] * 1000:6.0f} ms  {split}", flush=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


async def wait_for_version(seen: dict[int, float], changed: asyncio.Event, version: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while version not in seen:
            changed.clear()
            await changed.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(saves: int, interval_ms: float, rename: bool) -> None:
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    source, target = f"{prefix}/in", f"{prefix}/out"
    with broker() as mosquitto, tempfile.TemporaryDirectory(prefix="edgefn-bench-reload-") as name:
        folder = Path(name)
        codedir = folder / "fn"
        codedir.mkdir()
        save(codedir, 1, rename=False)
        with dev(mosquitto.port, folder, source, target) as log:
            latencies = await measure(mosquitto.port, codedir, source, target, saves, interval_ms / 1000, rename, log)
        failed = [line for line in log if "reload failed" in line]
    p50, p90 = percentile(latencies, 0.5), percentile(latencies, 0.9)
    verdict = "meets" if p50 <= TARGET_MS else "MISSES"
    how = "write-temp-then-rename" if rename else "in-place write"
    print(f"\nsave → first result from the new code, {len(latencies)} saves ({how}), "
          f"a QoS 1 message every {interval_ms:g} ms")
    print(f"  p50 {p50:6.0f} ms   p90 {p90:6.0f} ms   min {min(latencies) * 1000:6.0f} ms   "
          f"max {max(latencies) * 1000:6.0f} ms   mean {statistics.mean(latencies) * 1000:6.0f} ms")
    print(f"  target p50 ≤ {TARGET_MS:.0f} ms: {verdict}")
    print(f"  cores: {os.cpu_count()} shared by mosquitto, the load generator, the manager and its runtimes "
          "(nothing pinned)")
    if failed:
        print(f"  {len(failed)} reload(s) failed: see the manager's log")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--interval", type=float, default=10.0, help="ms between published messages")
    parser.add_argument("--rename", action="store_true", help="save by writing a temp file and renaming it")
    args = parser.parse_args()
    asyncio.run(main(args.saves, args.interval, args.rename))
