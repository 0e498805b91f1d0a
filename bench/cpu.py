"""Where the CPU goes: per-process CPU time of a system under test, from /proc.

A :class:`CpuMeter` names the processes of one measured system (the edgefn
manager and every runtime it spawned, the broker, a baseline forwarder) and
reads their user+system CPU seconds; :meth:`CpuMeter.per_message` turns two
readings into milliseconds of CPU per message for each process. With
``--profile``, :func:`profile` records a py-spy flame graph of a process while
the measured load runs (py-spy attaches with ptrace: root, or a ptrace_scope of 0).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 once it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (runtimes start their own sessions, but keep their parent)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def describe(pid: int) -> str:
    """A short name for a process: the runtime kind for an edgefn runtime, else its command."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
    except OSError:
        return f"pid {pid}"
    text = b" ".join(argv).decode(errors="replace")
    if "edgefn.manager.worker" in text:
        return f"worker {pid}"
    for marker, name in (("edgefn.runtimes.python", "python runtime"), ("runtimes/node/index.js", "node runtime"),
                         ("edgefn.runtimes.sql", "sql runtime")):
        if marker in text:
            return f"{name} {pid}"
    return Path(argv[0].decode(errors="replace")).name or f"pid {pid}"


class CpuMeter:
    """The CPU time of named processes, read before and after a measured run."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = dict(processes)
        self._before: dict[str, float] = {}

    @classmethod
    def for_edgefn(cls, manager: int, broker: int) -> CpuMeter:
        processes = {"manager": manager, "broker": broker}
        processes.update({describe(pid): pid for pid in descendants(manager)})
        return cls(processes)

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.processes.items()}

    def per_message(self, messages: int) -> dict[str, float]:
        """CPU milliseconds per message of each process since :meth:`start`."""
        return {name: (cpu_seconds(pid) - self._before.get(name, 0.0)) * 1000 / max(messages, 1)
                for name, pid in self.processes.items()}


def cpu_line(per_message: dict[str, float]) -> str:
    parts = [f"{name} {ms:.3f}" for name, ms in per_message.items()]
    return "CPU ms/msg: " + ", ".join(parts)


@contextmanager
def profile(pid: int, output: Path, seconds: float) -> Iterator[None]:
    """Record a py-spy flame graph (SVG) of ``pid`` for up to ``seconds`` while the body runs."""
    spy = Path(sys.executable).with_name("py-spy")
    process = subprocess.Popen([str(spy), "record", "--pid", str(pid), "--output", str(output),
                                "--duration", str(max(1, int(seconds))), "--rate", "200", "--nonblocking", *(["--format", "raw"] if output.suffix == ".txt" else [])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        process.send_signal(2)  # SIGINT: py-spy writes what it has
        _, err = process.communicate(timeout=60)
        if process.returncode not in (0, -2) and not output.exists():
            print(f"  (py-spy could not profile pid {pid}: {err.decode(errors='replace').strip()[-200:]})")
