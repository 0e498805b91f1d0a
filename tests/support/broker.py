"""A real mosquitto broker on an ephemeral port, for the test session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

# Stock mosquitto queues at most 1000 messages per client and drops the rest of a
# burst; tests and benches lift that so a loss is the system's, not the broker's.
CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages 0
max_inflight_messages 0
log_dest stderr
log_type error
log_type warning
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
            time.sleep(0.02)


@dataclass
class Mosquitto:
    """A running mosquitto process; stop() ends it."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, extra_config: str = "") -> "Mosquitto":
        directory = Path(tempfile.mkdtemp(prefix="edgefn-mosquitto-"))
        for _ in range(5):
            port = free_port()
            conf = directory / "mosquitto.conf"
            conf.write_text(CONFIG.format(port=port) + extra_config)
            process = subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            try:
                wait_for_port(port, timeout=5)
            except TimeoutError:
                process.kill()
                process.wait()
                continue
            return cls(port, process, directory)
        raise RuntimeError("mosquitto did not start; is it installed (apt-get install mosquitto)?")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.directory, ignore_errors=True)


if os.environ.get("EDGEFN_TEST_MOSQUITTO"):
    MOSQUITTO = os.environ["EDGEFN_TEST_MOSQUITTO"]
