"""How a runtime instance is launched: its command line and its environment (SPEC §5, §8).

An instance is a process started from a command line with its address in the
environment; python, node and sql are built-in commands. A later ``custom``
runtime only needs another entry in ``runtime_argv``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from edgefn.manager.config import FunctionConfig
from edgefn.manager.errors import EdgefnError

NODE_ENTRY = Path(__file__).resolve().parent.parent / "runtimes" / "node" / "index.js"
NODE_MIN_MAJOR = 18

# What a function sees of the manager's environment: enough to run, never its secrets.
BASE_KEYS = ("PATH", "HOME", "LANG", "TZ", "TMPDIR")


class LaunchError(EdgefnError):
    """A runtime cannot be launched on this machine (e.g. node is missing)."""


def runtime_argv(runtime: str) -> list[str]:
    """The command line of a built-in runtime."""
    if runtime == "python":
        # -P: the codedir (cwd) must not shadow the runtime's own imports (grpc, orjson).
        return [sys.executable, "-P", "-m", "edgefn.runtimes.python"]
    if runtime == "sql":
        return [sys.executable, "-P", "-m", "edgefn.runtimes.sql"]
    if runtime == "node":
        return [node_executable(), str(NODE_ENTRY)]
    raise LaunchError(f"unknown runtime {runtime!r}")


def node_executable() -> str:
    """The path of a usable ``node`` (≥ 18) with the runtime's packages installed."""
    node = shutil.which("node")
    if node is None:
        raise LaunchError(
            f"runtime node needs Node.js >= {NODE_MIN_MAJOR} on PATH: install it "
            "(e.g. apt-get install -y nodejs npm), then run 'npm ci' in runtimes/node"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if not match or int(match.group(1)) < NODE_MIN_MAJOR:
        raise LaunchError(f"runtime node needs Node.js >= {NODE_MIN_MAJOR}, found {version or 'unknown'} at {node}")
    if not (NODE_ENTRY.parent / "node_modules" / "@grpc" / "grpc-js").is_dir():
        raise LaunchError(f"the node runtime's packages are missing: run 'npm ci' in {NODE_ENTRY.parent}")
    return node


def instance_env(
    function: FunctionConfig,
    address: str,
    *,
    parent: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one instance: a minimal base, EDGEFN_*, the function's ``env``."""
    parent = os.environ if parent is None else parent
    env = {key: value for key, value in parent.items() if key in BASE_KEYS or key.startswith(("LC_", "EDGEFN_"))}
    env.update(function.env)
    env.update(
        {
            "EDGEFN_INSTANCE_ADDRESS": address,
            "EDGEFN_FUNCTION_NAME": function.name,
            "EDGEFN_FUNCTION_HANDLER": function.handler,
            "EDGEFN_FUNCTION_CODEDIR": str(function.codedir or ""),
            "EDGEFN_MESSAGE_MAX": str(function.instance.message_max),
            "EDGEFN_PARENT_PIPE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if extra:
        env.update(extra)
    return env
