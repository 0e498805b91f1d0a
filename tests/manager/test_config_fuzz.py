"""Mutated configs: config load and ``edgefn check`` answer with a message, never a traceback."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefn.manager.config import Config, ConfigError, load_config
from support.manager import FUNCTIONS

pytestmark = pytest.mark.timeout(120)

VALID: dict[str, Any] = {
    "hub": {"address": "tcp://127.0.0.1:1883", "clientid": "c", "keepalive": "1m", "interval": "5s"},
    "server": {"address": "127.0.0.1:0"},
    "rules": [
        {"subscribe": {"topic": "a/+", "qos": 1}, "function": {"name": "py"}, "publish": {"topic": "b", "qos": 1},
         "error": {"topic": "e"}, "retry": {"max": 2}},
        {"clientid": "other", "subscribe": {"topic": "s/#"}, "function": {"name": "sql"},
         "publish": {"topic": "s/out"}},
    ],
    "functions": [
        {"name": "py", "runtime": "python", "handler": "index.echo", "codedir": str(FUNCTIONS / "e2e"),
         "env": {"A": "1"}, "instance": {"min": 0, "max": 2, "timeout": "2s", "message": {"length": {"max": "1m"}}}},
        {"name": "sql", "runtime": "sql", "handler": "select a, b.c as d where a > 1"},
    ],
    "logger": {"level": "info", "format": "text"},
    "shutdown": {"timeout": "5s"},
}

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
    st.sampled_from(["${UNSET}", "${", "$$", "-1", "0", "1e400", "10x", "1.5m", "unix:///x", "tcp://:0",
                     "select * from t", "select (", "index.", "../../..", "\x00", "a\nb", "* * *", "<<"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid config with a few of its values replaced, removed or added, as YAML text (maybe garbled)."""
    document = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(paths(document)))
        if not where:
            continue
        parent = document
        for step in where[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "remove":
            del parent[where[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(VALUES)
        else:
            parent[where[-1]] = draw(VALUES)
    text = yaml.safe_dump(document, sort_keys=False)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["\t", ":", "- ", "[", "{", "&a ", "*a", "!!python/none ", "'", "\n  x"])) \
            + text[at:]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_config_load_answers_a_mutated_config_with_a_config_or_its_problems(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "edgefn.yml"
    path.write_text(text)
    try:
        config = load_config(path, environ={})
    except ConfigError as exc:
        assert exc.problems and all(str(problem) for problem in exc.problems)
    else:
        assert isinstance(config, Config)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_check_answers_a_mutated_config_with_a_message_never_a_traceback(tmp_path_factory: Any, text: str) -> None:
    path: Path = tmp_path_factory.mktemp("fuzz") / "edgefn.yml"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "edgefn", "check", str(path)], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() or done.stdout.strip()
