"""What ``pip install .`` puts outside the repository: the Node runtime can run from there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(170)
def test_the_wheel_has_the_node_runtime_its_proto_and_the_license(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=160)
    wheel = next(tmp_path.glob("edgefn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    # The node runtime loads ../../proto/function.proto: edgefn/proto/ when installed.
    assert {"edgefn/runtimes/node/index.js", "edgefn/runtimes/node/package-lock.json",
            "edgefn/proto/function.proto", "edgefn/manager/app.py"} <= names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text and "Requires-Dist: prometheus-client" in text
