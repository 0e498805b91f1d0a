"""The chaos scenarios of tests/chaos/ at larger counts, as a table.

Each scenario runs a real ``edgefn run`` on its own mosquitto (persistence on,
``cleansession: false``), disturbs it mid-run (kill -9 a runtime, kill -9 the
manager and restart it, restart the broker, or inputs that hang, hog memory,
exit, fork, flood stdout, are random or oversize) and counts every QoS 1 input
by the id it carries: lost (no answer), duplicated (answered more than once),
envelopes (answered by an error envelope), and whether the manager was alive at
the end. The scenarios are the tests' own (``tests/support/chaos.py``).

Usage: python bench/chaos.py [--scale K | --messages N] [--only a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import harness  # noqa: F401  (puts tests/ on the path)
from support import chaos  # noqa: E402


async def main(scale: int, messages: int | None, names: list[str]) -> int:
    outcomes = []
    print(chaos.HEADER, flush=True)
    for name in names:
        scenario = chaos.SCENARIOS[name]
        folder = Path(tempfile.mkdtemp(prefix="ef-chaos-bench-"))
        try:
            outcome = await chaos.run(scenario, folder, messages or scenario.count * scale)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        outcomes.append(outcome)
        print(chaos.row(outcome), flush=True)
        if outcome.wrong:
            print(f"  {len(outcome.wrong)} input(s) answered otherwise than expected, e.g. "
                  f"{next(iter(outcome.wrong.items()))}", flush=True)
    failed = [o.scenario for o in outcomes if o.lost or o.wrong or not o.alive]
    print(f"\n{'all inputs answered' if not failed else 'FAILED: ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="inputs per scenario: K times the test's count")
    parser.add_argument("--messages", type=int, help="inputs per scenario (overrides --scale)")
    parser.add_argument("--only", default=",".join(chaos.SCENARIOS), help="comma-separated scenario names")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = [name for name in chosen if name not in chaos.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(chaos.SCENARIOS)}")
    sys.exit(asyncio.run(main(args.scale, args.messages, chosen)))
