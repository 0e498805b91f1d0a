"""Cold start: first call → first result on a pool with no instance, Python and Node;
and ``edgefn run`` → first answer (min 0 and min 1) beside a bare aiomqtt forwarder's start.

Usage: python bench/cold_start.py [--runs N]

Each run builds a fresh ``Pool`` (``instance.min: 0``) for an identity function,
times one call (spawn, handshake, connect, call, answer), then stops the pool, so
every measured call starts its instance from nothing. Runs alternate between
the runtimes, so load from the rest of the machine falls on both alike; one
unmeasured run each comes first (it fills the OS page cache and Node's code
cache, as any earlier start of the same edgefn would). The cores are shared:
nothing is pinned. Targets: python ≤ 150 ms p50, node ≤ 200 ms p50.

The second part starts whole processes on one mosquitto: ``edgefn run`` (a Python
identity rule, ``instance.min`` 0 or 1, a fresh client id each run) and the
forwarder, while a probe publishes to the input topic every 5 ms; the time is
from the process's spawn to the first answer on the output topic. Targets:
≤ 300 ms with min 0, ≤ 200 ms with min 1.

edgefn's modules are byte-compiled first, as ``pip install`` does: with
PYTHONDONTWRITEBYTECODE set (as on this machine), an editable install would
otherwise compile every module from source at each start, and that is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

import subprocess
import sys

import aiomqtt
import yaml
from harness import BENCH, Figures, broker

import edgefn
from edgefn.manager.config import FunctionConfig, InstanceConfig
from edgefn.manager.message import Call
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool

TARGETS_MS = {"python": 150.0, "node": 200.0}
RUN_TARGETS_MS = {"edgefn run, min 0": 300.0, "edgefn run, min 1": 200.0}
PROBE_EVERY = 0.005
FUNCTIONS = {
    "python": FunctionConfig("identity-python", "python", "index.handler", BENCH / "functions" / "identity",
                             instance=InstanceConfig(min=0, max=1)),
    "node": FunctionConfig("identity-node", "node", "index.handler", BENCH / "functions" / "identity-js",
                           instance=InstanceConfig(min=0, max=1)),
}


async def cold_call(function: FunctionConfig, socket_dir: Path) -> float:
    """Seconds from the first call on an empty pool to its result."""
    pool = Pool(function, socket_dir=socket_dir, stats=Metrics().function(function.name))
    await pool.start()
    call = Call(1, 1, "bench/in", b'{"cold": true}', int(time.time()), function.name, str(uuid.uuid4()))
    try:
        started = time.perf_counter()
        result = await pool.call(call)
        elapsed = time.perf_counter() - started
    finally:
        await pool.stop(5)
    assert result == b'{"cold":true}', result
    return elapsed


async def first_answer(argv: list[str], port: int, source: str, target: str) -> float:
    """Seconds from spawning ``argv`` to the first message on ``target`` (``source`` probed every 5 ms)."""
    async with aiomqtt.Client("127.0.0.1", port) as probe:
        # Nagle off: else a probe waits for the broker's delayed ACK (~40 ms) and publishes in bursts.
        probe._client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # paho's socket
        await probe.subscribe(target, qos=0)

        async def pump() -> None:
            while True:
                await probe.publish(source, b'{"probe": true}', qos=0)
                await asyncio.sleep(PROBE_EVERY)

        started = time.perf_counter()
        # From /, as the installed `edgefn` command imports: `python -m` puts the working directory
        # first on sys.path, and from the repository's root that is the source folders, which
        # PYTHONDONTWRITEBYTECODE leaves uncompiled (each start would compile ~60 modules: ~40 ms).
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        pumping = asyncio.create_task(pump(), name="probe")
        try:
            async with asyncio.timeout(30):
                async for _ in probe.messages:
                    return time.perf_counter() - started
        finally:
            pumping.cancel()
            # Awaited while the probe is still connected: a publish cut short reports nothing.
            await asyncio.gather(pumping, return_exceptions=True)
            process.terminate()
            await asyncio.to_thread(process.wait, 30)
    raise RuntimeError("no answer")


def run_config(folder: Path, port: int, source: str, target: str, warm: int) -> Path:
    path = folder / f"run-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(yaml.safe_dump({
        "hub": {"address": f"tcp://127.0.0.1:{port}", "clientid": f"cold-{uuid.uuid4().hex[:8]}",
                "cleansession": True},
        "rules": [{"subscribe": {"topic": source}, "function": {"name": "identity"}, "publish": {"topic": target}}],
        "functions": [{"name": "identity", "runtime": "python", "handler": "index.handler",
                       "codedir": str(BENCH / "functions" / "identity"), "instance": {"min": warm, "max": 1}}],
    }))
    return path


async def process_starts(runs: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"forwarder (aiomqtt)": [], **{name: [] for name in RUN_TARGETS_MS}}
    with broker() as mosquitto, tempfile.TemporaryDirectory() as folder:
        port = mosquitto.port
        for run in range(runs + 1):  # the first round is unmeasured (page cache)
            source, target = f"cold/{uuid.uuid4().hex[:8]}/in", f"cold/{uuid.uuid4().hex[:8]}/out"
            measured = {"forwarder (aiomqtt)": await first_answer(
                [sys.executable, str(BENCH / "forwarder.py"), str(port), source, target], port, source, target)}
            for warm, name in enumerate(RUN_TARGETS_MS):
                config = run_config(Path(folder), port, source, target, warm)
                measured[name] = await first_answer([sys.executable, "-m", "edgefn", "run", str(config)],
                                                    port, source, target)
            if run:
                for name, seconds in measured.items():
                    timings[name].append(seconds)
    return timings


def byte_compile() -> None:
    """Write edgefn's bytecode cache, as an installed edgefn has it."""
    import compileall

    import edgefn.manager
    import edgefn.runtimes

    for package in (edgefn, edgefn.manager, edgefn.runtimes):
        compileall.compile_dir(package.__path__[0], quiet=1)


def import_hook_warning() -> str | None:
    """What to say when edgefn is installed with setuptools' import hook (a plain ``pip install -e``)."""
    if any(str(getattr(finder, "__module__", "")).startswith("__editable___edgefn") for finder in sys.meta_path):
        return ("note: edgefn is installed with an import hook (a plain `pip install -e .`), which costs every "
                "Python process 10-25 ms at start: run scripts/setup (--bench for the extra) to measure it as set up")
    return None


async def main(runs: int) -> None:
    byte_compile()
    if (warning := import_hook_warning()) is not None:
        print(warning, file=sys.stderr)
    socket_dir = Path(tempfile.mkdtemp(prefix="efn-bench-"))
    timings: dict[str, list[float]] = {runtime: [] for runtime in FUNCTIONS}
    try:
        for function in FUNCTIONS.values():
            await cold_call(function, socket_dir)  # unmeasured: page cache, Node's code cache
        for _ in range(runs):
            for runtime, function in FUNCTIONS.items():
                timings[runtime].append(await cold_call(function, socket_dir))
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
    print(f"\ncold start (first call → first result, fresh pool, min 0), {runs} runs each, "
          f"{os.cpu_count()} shared cores (nothing pinned)")
    for runtime, seconds in timings.items():
        figures = Figures(runtime, len(seconds), sum(seconds), seconds)
        p50 = figures.percentile(0.5)
        verdict = "ok" if p50 <= TARGETS_MS[runtime] else "ABOVE TARGET"
        print(f"  {runtime:<7} p50 {p50:7.1f} ms   p90 {figures.percentile(0.9):7.1f} ms   "
              f"min {min(seconds) * 1000:6.1f} ms   target p50 ≤ {TARGETS_MS[runtime]:.0f} ms: {verdict}")
    starts = await process_starts(max(3, runs // 3))
    baseline = Figures("forwarder", len(starts["forwarder (aiomqtt)"]), 1, starts["forwarder (aiomqtt)"])
    print(f"\nprocess start → first answer, {baseline.messages} runs each, one mosquitto, shared cores")
    for name, seconds in starts.items():
        figures = Figures(name, len(seconds), sum(seconds), seconds)
        p50 = figures.percentile(0.5)
        target = RUN_TARGETS_MS.get(name)
        verdict = "" if target is None else f"   target ≤ {target:.0f} ms: {'ok' if p50 <= target else 'ABOVE TARGET'}"
        print(f"  {name:<20} p50 {p50:7.1f} ms   p90 {figures.percentile(0.9):7.1f} ms   "
              f"× forwarder {p50 / baseline.percentile(0.5):.2f}{verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.runs))
