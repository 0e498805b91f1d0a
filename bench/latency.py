"""Latency: round trip of one message at a time through a Python identity function
at 500 msg/s, beside a bare aiomqtt forwarder measured in the same run.

Usage: python bench/latency.py [--seconds S] [--rate R]

Broker, load generator and system under test share this machine's cores (nothing pinned).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

from harness import BENCH, broker, drive, edgefn, forwarder, rule


async def main(seconds: float, rate: float) -> None:
    count = int(seconds * rate)
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    with broker() as mosquitto, tempfile.TemporaryDirectory() as folder:
        port = mosquitto.port
        with forwarder(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out"):
            await drive(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out", 200, rate=rate, name="warm-up")
            baseline = await drive(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out", count, rate=rate,
                                   name="forwarder (aiomqtt)")
        function = {"name": "identity", "runtime": "python", "handler": "index.handler",
                    "codedir": str(BENCH / "functions" / "identity"), "instance": {"min": 1, "max": 1}}
        source, target = f"{prefix}/fn/in", f"{prefix}/fn/out"
        with edgefn(port, [rule(source, "identity", target)], [function], Path(folder)):
            await drive(port, source, target, 200, rate=rate, name="warm-up")
            measured = await drive(port, source, target, count, rate=rate, name="edgefn python identity")
    print(f"\nlatency at {rate:g} msg/s, {count} QoS 1 messages, shared cores (nothing pinned)")
    for figures in (baseline, measured):
        print(f"  {figures.line()}")
    print(f"  added by edgefn: p50 +{measured.percentile(0.5) - baseline.percentile(0.5):.2f} ms, "
          f"p99 +{measured.percentile(0.99) - baseline.percentile(0.99):.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rate))
