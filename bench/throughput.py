"""Throughput: N QoS 1 messages through a bare aiomqtt forwarder and through edgefn.

Usage: python bench/throughput.py [--messages N] [--only python,node,sql]

Everything runs on one mosquitto in one run, on this machine's shared cores
(broker, load generator and system under test are not pinned). Prints msg/s,
p50/p99 latency and each edgefn path's ratio against the forwarder.
Targets (issues #3–#5): python ≥ 0.5×, node within 20% of python, sql ≥ 0.8×.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

from harness import BENCH, Figures, broker, drive, edgefn, forwarder, ratio, rule

# The docs' example, with a WHERE every bench message passes (they carry n and t, no id).
IDENTITY_SQL = "select qos() as qos, topic() as topic, * where n >= 0"


def functions(which: list[str]) -> list[dict]:
    table = {
        "python": {"name": "identity-python", "runtime": "python", "handler": "index.handler",
                   "codedir": str(BENCH / "functions" / "identity"), "instance": {"min": 2, "max": 2}},
        "node": {"name": "identity-node", "runtime": "node", "handler": "index.handler",
                 "codedir": str(BENCH / "functions" / "identity-js"), "instance": {"min": 2, "max": 2}},
        "sql": {"name": "identity-sql", "runtime": "sql", "handler": IDENTITY_SQL},
    }
    return [table[name] for name in which]


async def main(count: int, which: list[str]) -> None:
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    results: list[Figures] = []
    with broker() as mosquitto, tempfile.TemporaryDirectory() as folder:
        port = mosquitto.port
        with forwarder(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out"):
            await drive(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out", min(count, 2000), name="warm-up")
            baseline = await drive(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out", count, name="forwarder (aiomqtt)")
        results.append(baseline)
        for spec in functions(which):
            name = spec["name"]
            source, target = f"{prefix}/{name}/in", f"{prefix}/{name}/out"
            with edgefn(port, [rule(source, name, target)], [spec], Path(folder)):
                await drive(port, source, target, min(count, 2000), name="warm-up")
                results.append(await drive(port, source, target, count, name=f"edgefn {spec['runtime']}"))
    print(f"\nthroughput, {count} QoS 1 messages, one mosquitto, shared cores (nothing pinned)")
    for figures in results:
        print(f"  {figures.line()}   ratio {ratio(figures, baseline)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--only", default="python,node,sql", help="comma-separated: python,node,sql")
    args = parser.parse_args()
    asyncio.run(main(args.messages, [name for name in args.only.split(",") if name]))
