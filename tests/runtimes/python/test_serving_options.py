"""runtimes/serving.py's options: flags win over EDGEFN_*, then BAETYL_SERVICE_INSTANCE_ADDRESS."""

from __future__ import annotations

import pytest

from edgefn.manager.addresses import parse_target
from edgefn.runtimes.serving import RuntimeOptions, parse_options
from edgefn.wire.limits import DEFAULT_MESSAGE_MAX


@pytest.mark.parametrize(
    ("address", "target"),
    [("unix:///tmp/a.sock", "unix:///tmp/a.sock"), ("unix:rel/a.sock", "unix:rel/a.sock"),
     ("127.0.0.1:5000", "127.0.0.1:5000"), ("tcp://0.0.0.0:0", "0.0.0.0:0"), ("[::1]:80", "[::1]:80"),
     ("localhost:1", "localhost:1")],
)
def test_address_forms(address: str, target: str) -> None:
    assert parse_target(address) == target


@pytest.mark.parametrize("address", ["/tmp/a.sock", "unix://rel.sock", "unix:", "unix:///tmp/", "host",
                                     "host:", ":80", "tcp://host", "host:port", "host:70000"])
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="bad address"):
        parse_target(address)


@pytest.mark.parametrize(("text", "size"), [("100", 100), ("1k", 1024), ("4m", 4 << 20), ("1.5k", 1536),
                                            ("2G", 2 << 30), ("7b", 7), ("4mb", 4 << 20)])
def test_message_max_takes_the_config_size_forms(text: str, size: int) -> None:
    assert parse_options(["--handler", "a.b", "--check", "--message-max", text], "python", {}).message_max == size


@pytest.mark.parametrize("text", ["", "m", "-1", "0", "lots"])
def test_bad_message_max_is_usage_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_options(["--handler", "a.b", "--check", "--message-max", text], "python", {})
    assert exited.value.code == 2
    assert "message" in capsys.readouterr().err


def test_environment_fills_what_flags_leave_out() -> None:
    env = {"EDGEFN_INSTANCE_ADDRESS": "unix:///e.sock", "BAETYL_SERVICE_INSTANCE_ADDRESS": "unix:///b.sock",
           "EDGEFN_FUNCTION_NAME": "f", "EDGEFN_FUNCTION_HANDLER": "m.h", "EDGEFN_FUNCTION_CODEDIR": "/c",
           "EDGEFN_MESSAGE_MAX": "1m", "EDGEFN_PARENT_PIPE": "1"}
    assert parse_options([], "python", env) == RuntimeOptions(
        address="unix:///e.sock", name="f", handler="m.h", codedir="/c", message_max=1 << 20,
        check=False, watch_parent=True,
    )


def test_flags_win_over_the_environment() -> None:
    env = {"EDGEFN_INSTANCE_ADDRESS": "unix:///e.sock", "EDGEFN_FUNCTION_HANDLER": "m.h", "EDGEFN_MESSAGE_MAX": "1m"}
    options = parse_options(["--address", "tcp://127.0.0.1:9", "--handler", "x.y", "--message-max", "2k",
                             "--name", "n", "--codedir", "/d"], "python", env)
    assert (options.address, options.handler, options.message_max, options.name, options.codedir) == (
        "127.0.0.1:9", "x.y", 2048, "n", "/d")


def test_baetyl_address_is_the_last_resort_and_defaults_apply() -> None:
    options = parse_options(["--handler", "a.b"], "python", {"BAETYL_SERVICE_INSTANCE_ADDRESS": "127.0.0.1:1"})
    assert (options.address, options.codedir, options.message_max, options.watch_parent) == (
        "127.0.0.1:1", ".", DEFAULT_MESSAGE_MAX, False)


def test_check_mode_needs_no_address() -> None:
    assert parse_options(["--handler", "a.b", "--check"], "python", {}).check


@pytest.mark.parametrize("argv", [["--handler", "a.b"], [], ["--handler", "a.b", "--address", "nowhere"],
                                  ["--handler", "a.b", "--check", "--message-max", "0"], ["--bogus"]])
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_options(argv, "python", {})
    assert exited.value.code == 2
    assert "edgefn runtime python" in capsys.readouterr().err
