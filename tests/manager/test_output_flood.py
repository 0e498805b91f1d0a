"""A handler flooding its output fills neither the manager's log nor its terminal."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from edgefn.manager import logs
from edgefn.manager.config import FunctionConfig
from edgefn.manager.message import Call
from edgefn.manager.metrics import Metrics
from edgefn.manager.pool import Pool

CODEDIR = Path(__file__).resolve().parent.parent / "functions" / "floods"

pytestmark = pytest.mark.timeout(60)


async def test_a_flood_of_output_is_capped_per_instance_with_a_note(socket_dir: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgefn.instance")
    function = FunctionConfig("floods", "python", "index.handler", CODEDIR)
    pool = Pool(function, socket_dir=socket_dir, stats=Metrics().function("floods"))
    await pool.start()
    try:
        call = Call(id=1, qos=0, topic="t", payload=b"5000", timestamp=0, function="floods", invoke_id="i")
        assert orjson.loads(await pool.call(call)) == {"printed": 5000}
    finally:
        await pool.stop(5)
    relayed = [r.getMessage() for r in caplog.records if r.name == "edgefn.instance"]
    handler_lines = [m for m in relayed if m.startswith("[floods") and "line " in m]
    assert 0 < len(handler_lines) <= 2 * logs.OUTPUT_LINES_PER_SECOND + 10
    assert any("lines of output suppressed" in m for m in relayed)
    assert all(len(m) < logs.OUTPUT_LINE_MAX + 200 for m in relayed)
