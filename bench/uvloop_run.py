"""``edgefn`` on uvloop's event loop, for the benchmarks' comparison (``--loop uvloop``).

edgefn itself runs on asyncio's loop: measured side by side, uvloop did not make
the manager cheaper per message (its time goes to paho's and gRPC's Python code,
not to the loop), so it is not a dependency. This launcher lets the benches keep
checking that. Usage: python bench/uvloop_run.py run CONFIG (needs ``scripts/setup --bench``).
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from edgefn.cli import main

if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    sys.exit(main(sys.argv[1:]))
