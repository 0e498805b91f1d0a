"""Latency: each message's trip through a Python identity function at a steady rate
(1,000 msg/s by default), beside a bare aiomqtt forwarder measured in the same run.

Usage: python bench/latency.py [--seconds S] [--rate R] [--plot FILE.png]

Prints p50/p90/p99/p99.9 of both; ``--plot`` draws their histograms (needs
matplotlib: ``scripts/setup --bench``). Broker, load generator and system
under test share this machine's cores (nothing pinned). Targets: p50 ≤ 1.0 ms,
p99 ≤ 2.5 ms through the Python identity function.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

from harness import BENCH, Figures, broker, drive, edgefn, forwarder, rule


async def main(seconds: float, rate: float, plot: Path | None) -> None:
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
        marks = "   ".join(f"p{q * 100:g} {figures.percentile(q):6.2f} ms" for q in QUANTILES)
        print(f"  {figures.name:<24} {marks}")
    print(f"  added by edgefn: p50 +{measured.percentile(0.5) - baseline.percentile(0.5):.2f} ms, "
          f"p99 +{measured.percentile(0.99) - baseline.percentile(0.99):.2f} ms")
    verdict = "ok" if measured.percentile(0.5) <= 1.0 and measured.percentile(0.99) <= 2.5 else "ABOVE TARGET"
    print(f"  target p50 ≤ 1.0 ms and p99 ≤ 2.5 ms: {verdict}")
    if plot is not None:
        draw(plot, rate, (baseline, measured))
        print(f"  histogram: {plot}")


QUANTILES = (0.5, 0.9, 0.99, 0.999)


def draw(path: Path, rate: float, runs: tuple[Figures, ...]) -> None:
    """Both latency distributions as one histogram PNG (matplotlib, a bench-only extra)."""
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    top = max(figures.percentile(0.999) for figures in runs)
    for figures in runs:
        axes.hist([seconds * 1000 for seconds in figures.latencies], bins=80, range=(0, top), alpha=0.6,
                  label=f"{figures.name} (p50 {figures.percentile(0.5):.2f} ms, p99 {figures.percentile(0.99):.2f} ms)")
    axes.set_xlabel("latency, ms (publish → arrival)")
    axes.set_ylabel("messages")
    axes.set_title(f"latency at {rate:g} msg/s, QoS 1")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="draw both histograms (needs matplotlib)")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rate, args.plot))
