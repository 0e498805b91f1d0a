"""examples/downlinks end to end: a scheduled rule calls a local HTTP server with its time window."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from support.broker import Mosquitto
from support.manager import ManagerProcess
from support.mqtt import Probe

pytestmark = pytest.mark.timeout(90)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "downlinks"


class Meter(ThreadingHTTPServer):
    """A stand-in for the device's HTTP endpoint: records each request, answers JSON readings."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/readings"


class _Handler(BaseHTTPRequestHandler):
    server: Meter

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        with self.server.lock:
            self.server.requests.append(self.path)
        body = json.dumps({"readings": [1.5, 2.5]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the recorded requests."""


@pytest.fixture
def meter() -> Iterator[Meter]:
    server = Meter()
    thread = threading.Thread(target=server.serve_forever, name="meter", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_the_downlink_requests_the_window_before_each_fire_and_publishes_the_answer(
    mosquitto: Mosquitto, meter: Meter
) -> None:
    thing = uuid.uuid4().hex[:8]
    env = {"HUB_ADDRESS": mosquitto.address, "METER_URL": meter.url, "POLL_EVERY": "1s", "THING_ID": thing}
    async with Probe(mosquitto.port, [f"things/{thing}/downlink"]) as probe:
        with ManagerProcess(EXAMPLE / "edgefn.yml", env=env) as manager:
            await asyncio.to_thread(manager.wait_ready, 60)
            answers = [orjson.loads(message.payload) for message in await probe.collect(2, timeout=20)]
            assert manager.stop() == 0, manager.log
    for answer in answers:
        assert answer["status"] == 200 and answer["body"] == {"readings": [1.5, 2.5]}
        query = parse_qs(urlsplit(answer["url"]).query)
        start, end = datetime.fromisoformat(query["from"][0]), datetime.fromisoformat(query["to"][0])
        assert end - start == timedelta(minutes=1)  # interval: minute, value: 1, ending at the fire
        assert end == datetime.fromisoformat(answer["scheduledTime"])
        assert end.utcoffset() in (timedelta(hours=1), timedelta(hours=2))  # rendered in Europe/Berlin
        assert "method" not in query and "url" not in query  # request keys stay out of the query
    assert [urlsplit(path).path for path in meter.requests[:2]] == ["/readings", "/readings"]
    asked = {parse_qs(urlsplit(path).query)["to"][0] for path in meter.requests}
    assert {parse_qs(urlsplit(answer["url"]).query)["to"][0] for answer in answers} <= asked
    ends = sorted(datetime.fromisoformat(parse_qs(urlsplit(answer["url"]).query)["to"][0]) for answer in answers)
    assert ends[1] - ends[0] >= timedelta(seconds=1) and ends[1].microsecond == 0  # POLL_EVERY=1s, whole seconds


def test_the_example_shows_its_schedule_without_running(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "edgefn", "schedule", str(EXAMPLE / "edgefn.yml"),
                           "--from", "2026-03-27T00:00:00Z", "--count", "3"],
                          capture_output=True, timeout=50, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    nightly = [orjson.loads(line) for line in done.stdout.splitlines() if orjson.loads(line)["rule"] == 1]
    assert [line["at"] for line in nightly] == [
        "2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00"]
    assert nightly[0]["event"]["to"] - nightly[0]["event"]["from"] == 86400
