"""Start-up imports only what the config uses: a plain config never pays for the
embedded broker, SQL, schedules, the gRPC server or the other commands; a
handler check never pays for serving."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.broker import Mosquitto
from support.manager import FUNCTIONS, python_function, write_config

pytestmark = pytest.mark.timeout(60)

# Runs `edgefn run CONFIG` in this process, stops it once ready, then prints sys.modules.
RUN_UNTIL_READY = """
import logging, os, signal, sys
from edgefn.cli import main

class StopWhenReady(logging.Filter):
    def filter(self, record):
        if record.getMessage() == "edgefn ready":
            os.kill(os.getpid(), signal.SIGTERM)
        return True

logging.getLogger("edgefn.manager").addFilter(StopWhenReady())
status = main(["run", sys.argv[1]])
print(" ".join(sorted(sys.modules)))
sys.exit(status)
"""

# Loads a handler as `edgefn check` does (--check), then prints sys.modules (fd 1 is the handshake's).
CHECK_ONLY = """
import sys
from edgefn.runtimes.python import main

status = main(["--check", "--handler", "index.handler", "--codedir", sys.argv[1]])
print(" ".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(status)
"""

UNUSED_BY_A_PLAIN_CONFIG = {
    "amqtt": "the embedded broker (hub.embedded)",
    "sqlglot": "SQL functions",
    "cronsim": "scheduled rules",
    "zoneinfo": "scheduled rules",
    # (grpc itself imports the bare grpc_health and grpc_reflection packages, which hold nothing)
    "grpc_reflection.v1alpha": "the gRPC server (server section)",
    "grpc_health.v1": "the gRPC server, or a custom runtime without a handshake",
    "prometheus_client": "the metrics section",
    "watchfiles": "edgefn dev",
    "edgefn.manager.baetyl": "edgefn import-baetyl",
    "edgefn.manager.preview": "edgefn schedule",
    "edgefn.manager.call": "edgefn call",
    "edgefn.manager.init": "edgefn init",
}


def loaded(done: subprocess.CompletedProcess[str], stream: str) -> set[str]:
    assert done.returncode == 0, done.stderr
    return set(getattr(done, stream).strip().splitlines()[-1].split())


def test_run_with_a_plain_config_imports_only_what_it_uses(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = write_config(tmp_path, {
        "hub": {"address": mosquitto.address, "clientid": f"imports-{tmp_path.name[-8:]}"},
        "rules": [{"subscribe": {"topic": "imports/in"}, "function": {"name": "echo"},
                   "publish": {"topic": "imports/out"}}],
        "functions": [python_function("echo", "echo", instance={"min": 1})],
    })
    done = subprocess.run([sys.executable, "-c", RUN_UNTIL_READY, str(path)], capture_output=True, text=True,
                          timeout=50, stdin=subprocess.DEVNULL)
    modules = loaded(done, "stdout")
    assert "edgefn ready" in done.stderr
    assert {"aiomqtt", "edgefn.manager.pool"} <= modules  # it did run
    unexpected = {name: why for name, why in UNUSED_BY_A_PLAIN_CONFIG.items() if name in modules}
    assert not unexpected, f"imported by a plain config, only needed for: {unexpected}"


def test_a_handler_check_does_not_import_what_serving_needs() -> None:
    done = subprocess.run([sys.executable, "-P", "-c", CHECK_ONLY, str(FUNCTIONS / "echo")], capture_output=True,
                          text=True, timeout=50, stdin=subprocess.DEVNULL)
    modules = loaded(done, "stderr")
    assert '"ready":true' in done.stdout
    assert not {"asyncio", "grpc", "google.protobuf"} & modules
