"""Throughput: N QoS 1 messages through a bare aiomqtt forwarder and through edgefn.

Usage: python bench/throughput.py [--messages N] [--only python,node,sql] [--profile DIR]
                                  [--payload BYTES] [--max N] [--rules N] [--workers N]
                                  [--loop asyncio|uvloop]

Everything runs on one mosquitto in one run, on this machine's shared cores
(broker, load generator and system under test are not pinned). Prints msg/s,
p50/p99 latency, each edgefn path's ratio against the forwarder, and the CPU
milliseconds each process spent per message (manager, each runtime, broker;
the forwarder's own process for the baseline). ``--profile DIR`` also records
py-spy flame graphs of the manager and of one runtime into DIR. ``--payload``
pads each message to about that many bytes, ``--max`` sets the functions'
``instance.max`` (min as well: all warm), ``--rules`` adds rules that share the
function but get no traffic (what the rule count costs), ``--workers`` runs that
many manager processes (``workers: N``; the per-process CPU lists each worker),
``--loop uvloop`` also runs each edgefn path with the manager on uvloop (a line
of its own, for comparison; needs ``scripts/setup --bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from cpu import CpuMeter, cpu_line, profile
from harness import BENCH, Figures, broker, drive, edgefn, forwarder, ratio, rule

# The docs' example, with a WHERE every bench message passes (they carry n and t, no id).
IDENTITY_SQL = "select qos() as qos, topic() as topic, * where n >= 0"


def functions(which: list[str], instances: int = 2) -> list[dict]:
    pool = {"min": instances, "max": instances, "message": {"length": {"max": "4m"}}}
    table = {
        "python": {"name": "identity-python", "runtime": "python", "handler": "index.handler",
                   "codedir": str(BENCH / "functions" / "identity"), "instance": pool},
        "node": {"name": "identity-node", "runtime": "node", "handler": "index.handler",
                 "codedir": str(BENCH / "functions" / "identity-js"), "instance": pool},
        "sql": {"name": "identity-sql", "runtime": "sql", "handler": IDENTITY_SQL,
                "instance": {"message": {"length": {"max": "4m"}}}},
    }
    return [table[name] for name in which]


async def main(count: int, which: list[str], profiles: Path | None, kind: str = "svg", *,
               pad: int = 0, instances: int = 2, extra_rules: int = 0, workers: int = 1,
               loops: tuple[str, ...] = ("asyncio",)) -> None:
    prefix = f"bench/{uuid.uuid4().hex[:6]}"
    results: list[tuple[Figures, dict[str, float]]] = []
    with broker() as mosquitto, tempfile.TemporaryDirectory() as folder:
        port = mosquitto.port
        with forwarder(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out") as process:
            await drive(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out", min(count, 2000), name="warm-up", pad=pad)
            meter = CpuMeter({"forwarder": process.pid, "broker": mosquitto.process.pid})
            meter.start()
            baseline = await drive(port, f"{prefix}/fwd/in", f"{prefix}/fwd/out", count, name="forwarder (aiomqtt)",
                                   pad=pad)
            results.append((baseline, meter.per_message(baseline.messages)))
        for spec in functions(which, instances):
            for loop in loops:
                results.append(await _edgefn_run(mosquitto.process.pid, port, prefix, spec, Path(folder), count, profiles, kind,
                                                 pad=pad, extra_rules=extra_rules, workers=workers, loop=loop))
    print(f"\nthroughput, {count} QoS 1 messages (+{pad} bytes each), instance.max {instances}, "
          f"{1 + extra_rules} rules, {workers} worker{'s' if workers > 1 else ''}, one mosquitto, shared cores (nothing pinned)")
    for figures, cpu in results:
        print(f"  {figures.line()}   ratio {ratio(figures, baseline)}")
        print(f"      {cpu_line(cpu)}; system under test {sum(v for k, v in cpu.items() if k != 'broker'):.3f}")


async def _edgefn_run(broker_pid: int, port: int, prefix: str, spec: dict, folder: Path, count: int, profiles: Path | None,
                      kind: str, *, pad: int, extra_rules: int, workers: int, loop: str) -> tuple[Figures, dict[str, float]]:
    """One edgefn path under load: its figures and each process's CPU per message."""
    name = spec["name"]
    source, target = f"{prefix}/{name}/{loop}/in", f"{prefix}/{name}/{loop}/out"
    idle = [rule(f"{prefix}/{name}/idle/{i}", name, f"{prefix}/{name}/idle-out") for i in range(extra_rules)]
    with edgefn(port, [rule(source, name, target), *idle], [spec], folder, workers, loop) as process:
        await drive(port, source, target, min(count, 2000), name="warm-up", pad=pad)
        meter = CpuMeter.for_edgefn(process.pid, broker_pid)
        meter.start()
        label = f"edgefn {spec['runtime']}" + (" (uvloop)" if loop == "uvloop" else "")
        with _profiled(profiles if loop == "asyncio" else None, spec["runtime"], meter, count, kind):
            figures = await drive(port, source, target, count, name=label, pad=pad)
        return figures, meter.per_message(figures.messages)  # before the processes stop


@contextlib.contextmanager
def _profiled(folder: Path | None, runtime: str, meter: CpuMeter, count: int, kind: str = "svg") -> Iterator[None]:
    """Flame graphs of the manager and of its first runtime while the load runs (with --profile)."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    seconds = max(5.0, count / 500)
    runtimes = [pid for name, pid in meter.processes.items() if "runtime" in name]
    with contextlib.ExitStack() as stack:
        stack.enter_context(profile(meter.processes["manager"], folder / f"{runtime}-manager.{kind}", seconds))
        if runtimes:
            stack.enter_context(profile(runtimes[0], folder / f"{runtime}-runtime.{kind}", seconds))
        yield
    print(f"  profiles of the {runtime} run: {folder}/{runtime}-manager.{kind}, {runtime}-runtime.{kind}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--only", default="python,node,sql", help="comma-separated: python,node,sql")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="write py-spy flame graphs into DIR")
    parser.add_argument("--profile-format", choices=("svg", "txt"), default="svg",
                        help="svg: flame graphs; txt: collapsed stacks (one line per stack, with its sample count)")
    parser.add_argument("--payload", type=int, default=0, metavar="BYTES", help="pad each message by this much")
    parser.add_argument("--max", type=int, default=2, metavar="N", help="instance.min and max of the functions")
    parser.add_argument("--rules", type=int, default=1, metavar="N", help="rules in the config (1 gets traffic)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="manager processes (workers: N)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="uvloop: also measure each path with the manager on uvloop")
    args = parser.parse_args()
    asyncio.run(main(args.messages, [name for name in args.only.split(",") if name], args.profile,
                     args.profile_format, pad=args.payload, instances=args.max, extra_rules=max(0, args.rules - 1),
                     workers=args.workers, loops=("asyncio", "uvloop") if args.loop == "uvloop" else ("asyncio",)))
