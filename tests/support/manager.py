"""Run a real ``edgefn run CONFIG`` process and watch its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"


def write_config(folder: Path, document: dict, name: str = "edgefn.yml") -> Path:
    """Write ``document`` as YAML into ``folder``; return its path."""
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def python_function(name: str, case: str, handler: str = "index.handler", **extra: object) -> dict:
    """A python function entry whose codedir is the fixture ``tests/functions/<case>``."""
    return {"name": name, "runtime": "python", "handler": handler, "codedir": str(FUNCTIONS / case), **extra}


class ManagerProcess:
    """``edgefn run`` in a child process; its stderr is collected line by line."""

    def __init__(self, config: Path, *, command: str = "run", env: dict[str, str] | None = None) -> None:
        self.config = config
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgefn", command, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
            if "edgefn ready" in line:
                self._ready.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the manager logs ``edgefn ready``; fail with its log if it exits first."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.process.poll() is not None:
                self._reader.join(2)
                raise AssertionError(f"manager exited with {self.process.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"manager not ready after {timeout}s:\n{self.log}")

    def wait_for_log(self, text: str, timeout: float = 15.0) -> str:
        """Block until a log line contains ``text``; return that line."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line with {text!r} after {timeout}s:\n{self.log}")
                self._changed.wait(left)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit status (SIGKILL past ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"manager did not stop within {timeout}s:\n{self.log}")
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """SIGKILL the manager (its runtimes must notice on their own)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(5)

    def __enter__(self) -> "ManagerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.kill()
