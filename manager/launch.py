"""What every runtime instance is launched with: its environment, and where node is.

An instance is a process started from a command line (each runtime kind's
launcher in ``runners.py`` says which) with its address and its function in
the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edgefn.manager.errors import EdgefnError

# Light to import (re, shlex, shutil, subprocess are imported where used): the
# standby runtime (standby.py) starts from here before anything else loads.
if TYPE_CHECKING:
    from edgefn.manager.config import FunctionConfig

NODE_ENTRY = Path(__file__).resolve().parent.parent / "runtimes" / "node" / "index.js"
NODE_MIN_MAJOR = 18

# -P: the codedir (cwd) must not shadow the runtime's own imports (grpc, orjson).
PYTHON_ARGV = (sys.executable, "-P", "-m", "edgefn.runtimes.python")

# What a function sees of the manager's environment: enough to run, never its secrets.
BASE_KEYS = ("PATH", "HOME", "LANG", "TZ", "TMPDIR")
# What every Python instance is told, whatever its function.
PYTHON_FLAGS = {"EDGEFN_PARENT_PIPE": "1", "PYTHONUNBUFFERED": "1"}


class LaunchError(EdgefnError):
    """A runtime cannot be launched on this machine (e.g. node is missing)."""


def node_executable() -> str:
    """The path of a usable ``node`` (≥ 18) with the runtime's packages installed."""
    import re
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        raise LaunchError(
            f"runtime node needs Node.js >= {NODE_MIN_MAJOR} on PATH: install it "
            f"(e.g. apt-get install -y nodejs npm), then run: {npm_command()}"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if not match or int(match.group(1)) < NODE_MIN_MAJOR:
        raise LaunchError(f"runtime node needs Node.js >= {NODE_MIN_MAJOR}, found {version or 'unknown'} at {node}")
    if not (NODE_ENTRY.parent / "node_modules" / "@grpc" / "grpc-js").is_dir():
        raise LaunchError(f"the node runtime's packages are missing; run: {npm_command()}")
    return node


def npm_command() -> str:
    """The exact command that installs the Node runtime's packages where this edgefn is installed."""
    import shlex

    folder = shlex.quote(str(NODE_ENTRY.parent))
    return f"npm ci --omit=dev --prefix {folder}"


def instance_env(
    function: FunctionConfig,
    address: str,
    *,
    parent: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one instance: a minimal base, the function's ``env``, and what edgefn tells it.

    Of the manager's own environment only PATH, HOME, LANG, LC_*, TZ and TMPDIR
    pass: never its secrets, nor its own ``EDGEFN_*`` settings. The address is
    given under Baetyl's names too, so Baetyl's runtimes run unchanged.
    """
    env = base_env(os.environ if parent is None else parent)
    env.update(function.env)
    env.update(
        {
            "EDGEFN_INSTANCE_ADDRESS": address,
            "BAETYL_SERVICE_INSTANCE_ADDRESS": address,
            "BAETYL_SERVICE_INSTANCE_NAME": function.name,
            "EDGEFN_FUNCTION_NAME": function.name,
            "EDGEFN_FUNCTION_HANDLER": function.handler,
            "EDGEFN_FUNCTION_CODEDIR": str(function.codedir or ""),
            "EDGEFN_MESSAGE_MAX": str(function.instance.message_max),
            **PYTHON_FLAGS,
        }
    )
    if extra:
        env.update(extra)
    return env


def base_env(parent: Mapping[str, str]) -> dict[str, str]:
    """What passes of ``parent`` (the manager's environment) to every instance: PATH, HOME, LANG, LC_*, TZ, TMPDIR."""
    return {key: value for key, value in parent.items() if key in BASE_KEYS or key.startswith("LC_")}
