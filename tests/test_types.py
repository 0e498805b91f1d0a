"""The runner protocol type-checks: every runner (pool, SQL engine, stand-in) satisfies it.

mypy runs on the registry and the modules that build, hold or call runners, so a
runner that drifts from the protocol fails here, not at the first message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("manager/runners.py", "manager/pool.py", "manager/sql.py", "manager/router.py",
           "manager/instance.py", "manager/client.py", "manager/process.py")


@pytest.mark.timeout(180)
def test_mypy_finds_no_error_in_the_runner_registry_and_its_runners() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
         "--no-error-summary", *CHECKED],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )
    assert result.returncode == 0, result.stdout + result.stderr
