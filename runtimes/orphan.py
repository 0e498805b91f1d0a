"""How a child process of edgefn notices that its parent is gone.

The parent (the manager for a runtime or a guard, the supervisor for a worker)
starts the child with stdin a pipe it holds open and never writes to after the
start. When the parent exits, even killed with SIGKILL, the kernel closes its
end and the child reads EOF: no polling, no PR_SET_PDEATHSIG (which follows the
thread that forked, not the process).
"""

from __future__ import annotations

import os


def wait_for_eof(fd: int = 0) -> None:
    """Block until ``fd`` reaches EOF (or fails): the parent holding its other end is gone.

    Whatever arrives before is read and dropped.
    """
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass
