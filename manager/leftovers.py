"""Private temp folders that a killed manager does not leave behind for good.

Each folder holds a marker naming its owner (pid and the process's start time,
so a reused pid is not mistaken for it). A manager killed with SIGKILL cannot
clean up, so the next one to start removes every ``edgefn-*`` folder of this
user whose owner is gone. A folder without a marker is never touched: it may be
another manager's, caught between creating it and marking it.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("edgefn.manager")

PREFIX = "edgefn-"
MARKER = ".edgefn-owner"


def private_dir(prefix: str = PREFIX) -> Path:
    """A new 0700 temp folder marked as this process's, after sweeping up dead owners' folders."""
    sweep()
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    (folder / MARKER).write_text(_identity(os.getpid()) or str(os.getpid()))
    return folder


def sweep(root: Path | None = None) -> list[Path]:
    """Remove ``edgefn-*`` folders in ``root`` (the temp dir) whose marked owner is gone; return them."""
    removed = []
    for folder in (root or Path(tempfile.gettempdir())).glob(PREFIX + "*"):
        if _abandoned(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        log.info("removed %d folder(s) left by a manager that was killed", len(removed))
    return removed


def _abandoned(folder: Path) -> bool:
    try:
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        owner = (folder / MARKER).read_text().split()
    except (OSError, UnicodeDecodeError):
        return False  # unmarked (or not ours to read): leave it
    if not owner or not owner[0].isdigit():
        return False
    return _identity(int(owner[0])) != " ".join(owner)


def _identity(pid: int) -> str | None:
    """``"pid starttime"`` while ``pid`` runs (start time tells a reused pid apart), else None."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":  # a zombie: it is gone, only not yet reaped
        return None
    return f"{pid} {fields[19]}"  # field 22 of stat: the start time, in clock ticks since boot
