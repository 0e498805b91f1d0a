"""docs/config.md is generated from the key table the config readers use, and cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgefn.manager import config_docs
from edgefn.manager.config import HubConfig, InstanceConfig, LoggerConfig, ShutdownConfig, load_config
from edgefn.manager.config_keys import SECTIONS, key, keys
from edgefn.manager.units import parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[2]


def test_docs_config_md_is_what_the_generator_writes() -> None:
    committed = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert committed == config_docs.render(), "docs/config.md is stale: run scripts/config-docs"


def test_every_section_example_is_yaml_and_every_key_has_a_meaning() -> None:
    for section in SECTIONS:
        if section.example:
            assert isinstance(yaml.safe_load(section.example), dict), section.path
        for declared in section.keys:
            assert declared.meaning and declared.type, (section.path, declared.name)


@pytest.mark.parametrize(("path", "name", "parse", "actual"), [
    ("hub", "clientid", str, HubConfig().clientid),
    ("hub", "keepalive", parse_duration, HubConfig().keepalive),
    ("hub", "interval", parse_duration, HubConfig().interval),
    ("hub", "cleansession", lambda text: text == "true", HubConfig().cleansession),
    ("hub.embedded", "port", int, HubConfig().embedded_port),
    ("hub.message.length", "max", parse_size, HubConfig().message_max),
    ("functions[].instance", "min", int, InstanceConfig().min),
    ("functions[].instance", "max", int, InstanceConfig().max),
    ("functions[].instance", "concurrency", int, InstanceConfig().concurrency),
    ("functions[].instance", "idletime", parse_duration, InstanceConfig().idletime),
    ("functions[].instance", "evicttime", parse_duration, InstanceConfig().evicttime),
    ("functions[].instance", "timeout", parse_duration, InstanceConfig().timeout),
    ("functions[].instance", "starttimeout", parse_duration, InstanceConfig().starttimeout),
    ("functions[].instance.message.length", "max", parse_size, InstanceConfig().message_max),
    ("functions[].instance.backoff", "max", parse_duration, InstanceConfig().backoff_max),
    ("logger", "level", str, LoggerConfig().level),
    ("logger", "format", str, LoggerConfig().format),
    ("logger", "status", parse_duration, LoggerConfig().status),
    ("shutdown", "timeout", parse_duration, ShutdownConfig().timeout),
])
def test_documented_defaults_are_the_dataclasses_defaults(path: str, name: str, parse: object, actual: object) -> None:
    assert parse(key(path, name).default) == actual  # type: ignore[operator]


def test_the_readers_accept_exactly_the_documented_keys(tmp_path: Path) -> None:
    # An undocumented key is refused, and the error lists the documented ones.
    (tmp_path / "edgefn.yml").write_text(
        "logger: {colour: red}\nfunctions: [{name: f, runtime: sql, handler: select 1 as a}]\n")
    with pytest.raises(Exception) as raised:
        load_config(tmp_path / "edgefn.yml")
    assert ", ".join(keys("logger")) in str(raised.value)


def test_metrics_and_logger_status_load(tmp_path: Path) -> None:
    (tmp_path / "edgefn.yml").write_text(
        "metrics: {address: '127.0.0.1:0'}\nlogger: {status: 0}\n"
        "functions: [{name: f, runtime: sql, handler: select 1 as a}]\n")
    config = load_config(tmp_path / "edgefn.yml")
    assert config.metrics is not None and (config.metrics.host, config.metrics.port) == ("127.0.0.1", 0)
    assert config.logger.status == 0
    (tmp_path / "edgefn.yml").write_text("metrics: {address: nowhere}\nfunctions: [{name: f, runtime: sql, handler: x}]\n")
    with pytest.raises(Exception, match="metrics.address.*host:port"):
        load_config(tmp_path / "edgefn.yml")


def test_without_a_metrics_section_there_is_no_endpoint(tmp_path: Path) -> None:
    (tmp_path / "edgefn.yml").write_text("functions: [{name: f, runtime: sql, handler: select 1 as a}]\n")
    assert load_config(tmp_path / "edgefn.yml").metrics is None
