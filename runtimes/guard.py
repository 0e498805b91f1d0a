"""``python -m edgefn.runtimes.guard COMMAND...``: run a custom runtime so it cannot outlive the manager.

edgefn's own runtimes exit (with their process group) when stdin, the pipe the
manager holds, reaches EOF. A custom runtime knows nothing of that pipe, so
the manager starts it under this guard: the guard leads the instance's process
group, runs the command as its child, and

- relays SIGTERM/SIGINT to it (a graceful stop stays the runtime's own);
- exits as the command exited (the same status, or killed by the same signal),
  so the manager reads the runtime's own fate;
- kills the whole group the moment stdin reaches EOF: the manager is gone,
  even if it was killed with SIGKILL.

Standard library only, and little of it: it adds a few milliseconds to a start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from edgefn.runtimes.orphan import wait_for_eof


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m edgefn.runtimes.guard COMMAND [ARG...]", file=sys.stderr)
        return 2
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: child.send_signal(signum))
    threading.Thread(target=_watch_parent, name="edgefn-guard", daemon=True).start()
    status = child.wait()
    if status < 0:  # killed by a signal: die of the same one
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


def _watch_parent() -> None:
    """EOF on stdin: the manager is gone; take the runtime and all it started along."""
    wait_for_eof()
    os.killpg(0, signal.SIGKILL)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
