"""The config file (SPEC §3): defaults, bounds, units, ${VAR}, paths, and every problem at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgefn.manager.config import (
    Config, ConfigError, FunctionConfig, HubConfig, InstanceConfig, LoggerConfig, Problem,
    RuleConfig, TopicConfig, load_config, parse_duration, parse_size,
)

REPO = Path(__file__).resolve().parents[2]

FULL = """\
hub:
  address: ssl://hub.example:8884
  username: test
  password: ${HUB_PASSWORD}
  ca: certs/ca.pem
  cert: certs/client.pem
  key: certs/client.key
  clientid: edgefn-1
  keepalive: 1m
  cleansession: true
  interval: 30s
server:
  address: 127.0.0.1:50051
rules:
  - clientid: sayhi-1
    subscribe: {topic: t, qos: 1}
    function: {name: sayhi}
    publish: {topic: t/hi, qos: 1}
    error: {topic: t/hi/err, qos: 1}
    retry: {max: 5}
  - subscribe: {topic: "sensors/+/temp/#"}
    function: {name: hot}
    publish: {topic: alerts}
functions:
  - name: sayhi
    runtime: python
    handler: index.handler
    codedir: ../functions/sayhi
    env: {GREETING: hi, COUNT: 3, COUNTRY: NO, EMPTY: }
    instance: {min: 1, max: 4, concurrency: 2, idletime: 10m, evicttime: 1.5m, timeout: 500ms,
               starttimeout: 10s, memory: 256m, message: {length: {max: 1m}}, backoff: {max: 2m}}
  - name: hot
    runtime: sql
    handler: select * where temp > 30
logger: {level: debug, format: json, path: logs/edgefn.log}
shutdown: {timeout: 1h}
"""


def write(folder: Path, text: str, name: str = "config.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def fail(folder: Path, text: str, environ: dict[str, str] | None = None) -> tuple[Problem, ...]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(folder, text), environ or {})
    return caught.value.problems


def only(problems: tuple[Problem, ...]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A config folder with a function, certificates, and the functions/ folder beside it."""
    (tmp_path / "conf" / "certs").mkdir(parents=True)
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / "conf" / "certs" / name).write_text("-----")
    (tmp_path / "conf" / "logs").mkdir()
    (tmp_path / "functions" / "sayhi").mkdir(parents=True)
    (tmp_path / "conf" / "fn").mkdir()
    return tmp_path / "conf"


# A minimal valid function, for configs that test something else.
FN = """\
functions:
  - name: f
    runtime: python
    handler: index.handler
    codedir: fn
"""


def test_the_spec_example_loads_with_its_values_and_paths_resolved(project: Path) -> None:
    config = load_config(write(project, FULL), {"HUB_PASSWORD": "s3cret"})
    assert config.path == project / "config.yml"
    assert config.hub == HubConfig(
        address="ssl://hub.example:8884", scheme="ssl", host="hub.example", port=8884,
        username="test", password="s3cret", ca=project / "certs/ca.pem",
        cert=project / "certs/client.pem", key=project / "certs/client.key",
        clientid="edgefn-1", keepalive=60.0, cleansession=True, interval=30.0,
    )
    assert not config.hub.embedded and config.hub.tls
    assert config.server is not None and config.server.address == "127.0.0.1:50051"
    assert config.rules[0] == RuleConfig(
        "sayhi-1", TopicConfig("t", 1), "sayhi", TopicConfig("t/hi", 1), TopicConfig("t/hi/err", 1), 5, 0
    )
    assert config.rules[1].clientid is None and config.rules[1].error is None
    assert config.rules[1].retry_max == 3 and config.rules[1].index == 1
    sayhi = config.function("sayhi")
    assert sayhi.codedir == project.parent / "functions" / "sayhi"
    assert dict(sayhi.env) == {"GREETING": "hi", "COUNT": "3", "COUNTRY": "NO", "EMPTY": ""}
    assert sayhi.instance == InstanceConfig(
        min=1, max=4, concurrency=2, idletime=600.0, evicttime=90.0, timeout=0.5,
        starttimeout=10.0, memory=256 * 1024**2, message_max=1024**2, backoff_max=120.0,
    )
    assert config.function("hot") == FunctionConfig(
        "hot", "sql", "select * where temp > 30", None, {}, InstanceConfig(), 1
    )
    assert config.logger == LoggerConfig("debug", "json", project / "logs" / "edgefn.log")
    assert config.shutdown.timeout == 3600.0
    assert config.warnings == ()
    assert config.rules_for("sayhi") == (config.rules[0],)
    with pytest.raises(KeyError):
        config.function("nope")


def test_a_minimal_config_gets_baetyls_defaults_and_an_embedded_broker(project: Path) -> None:
    config = load_config(write(project, FN), {})
    assert config.hub == HubConfig() and config.hub.embedded
    assert (config.hub.scheme, config.hub.host, config.hub.port) == ("tcp", "127.0.0.1", 1883)
    assert config.server is None and config.rules == ()
    assert config.functions[0].instance == InstanceConfig(
        min=0, max=1, concurrency=1, idletime=600.0, evicttime=60.0, timeout=30.0,
        starttimeout=10.0, memory=None, message_max=4 * 1024 * 1024, backoff_max=60.0,
    )
    assert config.logger == LoggerConfig() and config.shutdown.timeout == 30.0


def test_config_objects_are_frozen_and_hashable(project: Path) -> None:
    config = load_config(write(project, FULL), {"HUB_PASSWORD": "x"})
    with pytest.raises(AttributeError):
        config.hub.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.functions[0].env["X"] = "y"  # type: ignore[index]
    assert len({config.functions[0], config.functions[0]}) == 1


def test_the_quickstart_example_loads() -> None:
    config = load_config(REPO / "examples" / "quickstart.yml", {})
    assert config.hub.embedded and config.hub.port == 1883
    assert config.rules[0].subscribe == TopicConfig("t", 0)
    assert config.rules[0].publish == TopicConfig("t/hi", 0)
    sayhi = config.function("sayhi")
    assert (sayhi.runtime, sayhi.handler, sayhi.codedir) == ("python", "index.handler", REPO / "functions" / "sayhi")


def test_embedded_port_is_the_hubs_port(project: Path) -> None:
    config = load_config(write(project, "hub: {embedded: {port: 18830}}\n" + FN), {})
    assert config.hub.embedded and config.hub.port == config.hub.embedded_port == 18830


@pytest.mark.parametrize(
    ("address", "scheme", "host", "port", "path"),
    [
        ("tcp://127.0.0.1", "tcp", "127.0.0.1", 1883, "/mqtt"),
        ("ssl://broker", "ssl", "broker", 8883, "/mqtt"),
        ("ws://broker:8080/ws", "ws", "broker", 8080, "/ws"),
        ("wss://broker", "wss", "broker", 443, "/mqtt"),
        ("TCP://[::1]:1884", "tcp", "::1", 1884, "/mqtt"),
    ],
)
def test_hub_address_forms(project: Path, address: str, scheme: str, host: str, port: int, path: str) -> None:
    hub = load_config(write(project, f"hub: {{address: '{address}'}}\n" + FN), {}).hub
    assert (hub.scheme, hub.host, hub.port, hub.websocket_path) == (scheme, host, port, path)


# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [(512, 512), ("512", 512), ("512b", 512), ("4k", 4096), ("4K", 4096), ("4kb", 4096),
     ("4m", 4 * 1024**2), ("4MiB", 4 * 1024**2), ("1g", 1024**3), ("1.5m", 1536 * 1024), (" 2 k ", 2048)],
)
def test_sizes_are_1024_based_and_bare_numbers_are_bytes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), (0.5, 0.5), ("30", 30.0), ("500ms", 0.5), ("30s", 30.0), ("1.5m", 90.0),
     ("10m", 600.0), ("2h", 7200.0), ("1h30m", 5400.0), ("1m30s", 90.0), (".5s", 0.5), ("250us", 0.00025)],
)
def test_durations_take_ms_s_m_h_with_fractions_and_bare_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "m", "4x", "-1k", "4 m b", True, None, [1], "1e3", "nan"])
def test_bad_sizes_say_what_was_expected(text: object) -> None:
    with pytest.raises(ValueError, match="expected a size like 512k"):
        parse_size(text)


@pytest.mark.parametrize("text", ["", "s", "10d", "-1s", "1h 30m", "1s2", False, None, "inf", "1e3s"])
def test_bad_durations_say_what_was_expected(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like 500ms"):
        parse_duration(text)


# -- ${VAR} -----------------------------------------------------------------------------------

ENV_CONFIG = """\
hub:
  address: tcp://${HUB_HOST}:${HUB_PORT:-1883}
  password: "${HUB_PASSWORD}"
  username: $$user
functions:
  - name: f
    runtime: python
    handler: index.handler
    codedir: ${FN_DIR}
    env: {PRICE: "$$5 and $HOME stays", NESTED: "${YAML}"}
"""


def test_variables_expand_from_the_environment_with_defaults_and_dollar_escapes(project: Path) -> None:
    environ = {"HUB_HOST": "broker", "HUB_PASSWORD": "p@ss: {not yaml}", "FN_DIR": "fn",
               "YAML": "{a: [1, 2]}\n- b"}
    config = load_config(write(project, ENV_CONFIG), environ)
    assert (config.hub.host, config.hub.port) == ("broker", 1883)
    assert config.hub.password == "p@ss: {not yaml}"
    assert config.hub.username == "$user"
    assert config.functions[0].codedir == project / "fn"
    # A variable's value is text inside its scalar: it never adds YAML structure.
    assert dict(config.functions[0].env) == {"PRICE": "$5 and $HOME stays", "NESTED": "{a: [1, 2]}\n- b"}


def test_a_variable_typed_by_expansion_reads_as_a_number(project: Path) -> None:
    config = load_config(write(project, FN + "    instance: {max: '${MAX}'}\n"), {"MAX": "7"})
    assert config.functions[0].instance.max == 7


def test_an_unset_variable_is_an_error_naming_it_and_where(project: Path) -> None:
    problems = fail(project, ENV_CONFIG, {"FN_DIR": "fn", "YAML": ""})
    assert [(p.path, p.line) for p in problems] == [("hub.address", 2), ("hub.password", 3)]
    assert "HUB_HOST is not set" in problems[0].message
    assert "HUB_PASSWORD is not set" in problems[1].message
    assert "${HUB_PASSWORD:-default}" in problems[1].message


def test_a_malformed_reference_is_an_error(project: Path) -> None:
    problem = only(fail(project, "hub: {password: 'a${1X}b'}\n" + FN))
    assert (problem.path, problem.line) == ("hub.password", 1)
    assert "bad variable reference '${1X}'" in problem.message


# -- bad configs: each with its exact path, line and what was expected -----------------------

BAD = [
    ("rules:\n  - subscribe: {qos: 1}\n    function: {name: f}\n    publish: {topic: o}\n",
     "rules[0].subscribe.topic", 2, "missing; expected a topic filter"),
    ("rules:\n  - subscribe: {topic: t}\n    function: {name: g}\n    publish: {topic: o}\n",
     "rules[0].function.name", 3, "no function named 'g' in functions (defined: f)"),
    ("rules:\n  - subscribe: {topic: t}\n    function: {name: f}\n",
     "rules[0].publish", 2, "missing; expected a mapping like {topic: devices/{2}/reply, qos: 1"),
    ("rules:\n  - subscribe: {topic: t, qos: 3}\n    function: {name: f}\n    publish: {topic: o}\n",
     "rules[0].subscribe.qos", 2, "must be between 0 and 2, got 3"),
    ("rules:\n  - subscribe: {topic: t}\n    function: {name: f}\n    publish: {topic: o, qos: one}\n",
     "rules[0].publish.qos", 4, "expected a whole number between 0 and 2, got 'one'"),
    ("rules:\n  - subscribe: {topic: 'a/b#'}\n    function: {name: f}\n    publish: {topic: o}\n",
     "rules[0].subscribe.topic", 2, "'#' must be a whole level and the last one"),
    ("rules:\n  - subscribe: {topic: 'a/b+/c'}\n    function: {name: f}\n    publish: {topic: o}\n",
     "rules[0].subscribe.topic", 2, "'+' must be a whole level"),
    ("rules:\n  - subscribe: {topic: t}\n    function: {name: f}\n    publish: {topic: o}\n"
     "    error: {topic: 'e/#'}\n",
     "rules[0].error.topic", 5, "cannot hold the wildcards + or #"),
    ("rules:\n  - subscribe: {topic: t}\n    function: {name: f}\n    publish: {topic: o}\n"
     "    retry: {max: 0}\n",
     "rules[0].retry.max", 5, "must be at least 1, got 0"),
    ("rules: {subscribe: t}\n", "rules", 1, "expected a list, got a mapping"),
    ("rules:\n  - subscribe: {topic: t}\n    function: f\n    publish: {topic: o}\n",
     "rules[0].function", 3, "expected a mapping like {name: sayhi}, got 'f'"),
    ("hub: tcp://h:1883\n", "hub", 1, "expected a mapping like {address: tcp://host:1883}"),
    ("hub: {address: 'mqtt://h:1883'}\n", "hub.address", 1, "scheme tcp, ssl, ws or wss"),
    ("hub: {address: 'tcp://h:99999'}\n", "hub.address", 1, "bad port"),
    ("hub: {address: 'tcp://h:1883/x'}\n", "hub.address", 1, "only ws:// and wss:// addresses take a path"),
    ("hub: {address: 'tcp://h', embedded: {port: 1884}}\n", "hub.embedded", 1,
     "an embedded broker starts only without hub.address"),
    ("hub: {address: 'ssl://h', ca: nope.pem}\n", "hub.ca", 1, "expected an existing file"),
    ("hub: {address: 'tcp://h', ca: certs/ca.pem}\n", "hub.ca", 1, "TLS files need an ssl:// or wss:// hub.address"),
    ("hub: {keepalive: 1y}\n", "hub.keepalive", 1, "expected a duration like 500ms"),
    ("hub: {cleansession: maybe}\n", "hub.cleansession", 1, "expected true or false, got 'maybe'"),
    ("server: {address: localhost}\n", "server.address", 1, "expected host:port"),
    ("server: {address: 'unix:///nonexistent/dir/s.sock'}\n", "server.address", 1,
     "the socket's folder /nonexistent/dir does not exist"),
    ("server: {address: '127.0.0.1:1', ca: certs/ca.pem}\n", "server.ca", 1, "needs the server's cert and key"),
    ("logger: {level: loud}\n", "logger.level", 1, "expected one of debug, info, warn, error, got 'loud'"),
    ("logger: {format: xml}\n", "logger.format", 1, "expected one of text, json"),
    ("shutdown: {timeout: 0}\n", "shutdown.timeout", 1, "must be more than 0"),
    ("extra: 1\n", "extra", 1, "unknown key; expected one of: hub, server"),
    ("logger: {levle: info}\n", "logger.levle", 1, "did you mean 'level'?"),
]


@pytest.mark.parametrize(("text", "path", "line", "fragment"), BAD, ids=[case[1] for case in BAD])
def test_a_bad_setting_is_reported_with_its_path_line_and_expectation(
    project: Path, text: str, path: str, line: int, fragment: str
) -> None:
    problem = only(fail(project, FN + text))
    offset = FN.count("\n")
    assert (problem.path, problem.line) == (path, line + offset)
    assert fragment in problem.message


# -- topic templates, retain, QoS 2, presence ------------------------------------------------

def _rule_text(subscribe: str, publish: str, error: str = "") -> str:
    text = f"rules:\n  - subscribe: {{topic: '{subscribe}'}}\n    function: {{name: f}}\n    publish: {publish}\n"
    return text + (f"    error: {error}\n" if error else "")


BAD_TEMPLATES = [
    (_rule_text("a/+", "{topic: 'out/{name}'}"), "rules[0].publish.topic", 4, "unknown placeholder {name}"),
    (_rule_text("a/+", "{topic: 'out/{2'}"), "rules[0].publish.topic", 4, "is not closed"),
    (_rule_text("a/+", "{topic: 'out/2}'}"), "rules[0].publish.topic", 4, "a lone '}'"),
    (_rule_text("a/+", "{topic: 'out/{3}'}"), "rules[0].publish.topic", 4,
     "{3} names level 3, but the subscription's topics have 2 levels"),
    (_rule_text("$share/g/a/+", "{topic: o}", "{topic: 'e/{3}'}"), "rules[0].error.topic", 5,
     "the subscription's topics have 2 levels"),
    (_rule_text("$queue/+", "{topic: 'o/{2}'}"), "rules[0].publish.topic", 4, "have 1 level "),
    (_rule_text("a/+", "{topic: 'out/{2}/+'}"), "rules[0].publish.topic", 4, "cannot hold the wildcards"),
    (_rule_text("a/+", "{topic: o, retain: perhaps}"), "rules[0].publish.retain", 4, "expected true or false"),
    (_rule_text("a", "{topic: o, qos: 3}"), "rules[0].publish.qos", 4, "must be between 0 and 2, got 3"),
    (_rule_text("a", "{topic: o}", "{topic: e, qos: 3}"), "rules[0].error.qos", 5, "must be between 0 and 2"),
    (_rule_text("a", "{topic: o}") + "    subscribe2: 1\n", "rules[0].subscribe2", 5, "unknown key"),
    ("hub: {status: {topic: 'x/{function}'}}\n", "hub.status.topic", 1, "may use {clientid} only"),
    ("hub: {status: {topic: 'x/{1}'}}\n", "hub.status.topic", 1, "may use {clientid} only"),
    ("hub: {status: {topic: 'x/#'}}\n", "hub.status.topic", 1, "cannot be published to"),
    ("hub: {status: {qos: 5}}\n", "hub.status.qos", 1, "must be between 0 and 2"),
    ("hub: {status: {onlin: x}}\n", "hub.status.onlin", 1, "did you mean 'online'?"),
]


@pytest.mark.parametrize(("text", "path", "line", "fragment"), BAD_TEMPLATES, ids=[c[1] + c[3] for c in BAD_TEMPLATES])
def test_a_bad_output_topic_or_status_is_reported_with_its_path_and_line(
    project: Path, text: str, path: str, line: int, fragment: str
) -> None:
    problem = only(fail(project, FN + text))
    assert (problem.path, problem.line) == (path, line + FN.count("\n"))
    assert fragment in problem.message


def test_templates_compile_once_at_load_with_retain_and_qos_2(project: Path) -> None:
    config = load_config(write(project, FN + _rule_text(
        "/+/+/status", "{topic: '/{2}/{3}', qos: 2, retain: true}", "{topic: 'err/{topic}', qos: 2}")), {})
    rule = config.rules[0]
    assert rule.publish.template is not None and rule.publish.template.max_level == 3
    assert (rule.publish.qos, rule.publish.retain) == (2, True)
    assert rule.error is not None and rule.error.template is not None and rule.error.template.uses_topic
    assert (rule.error.qos, rule.error.retain) == (2, False)


def test_a_filter_ending_in_hash_allows_any_level(project: Path) -> None:
    config = load_config(write(project, FN + _rule_text("a/#", "{topic: 'out/{9}'}")), {})
    assert config.rules[0].publish.template is not None


def test_qos_2_is_allowed_in_subscribe(project: Path) -> None:
    config = load_config(write(project, FN + "rules:\n  - subscribe: {topic: a, qos: 2}\n"
                               "    function: {name: f}\n    publish: {topic: o}\n"), {})
    assert config.rules[0].subscribe.qos == 2


def test_hub_status_is_off_by_default_and_has_defaults_when_on(project: Path) -> None:
    assert load_config(write(project, FN), {}).hub.status is None
    status = load_config(write(project, FN + "hub: {status: {}}\n"), {}).hub.status
    assert status is not None
    assert (status.topic_for("edge-1"), status.online, status.offline, status.qos, status.retain) == (
        "edgefn/edge-1/status", b'{"status":"connected"}', b'{"status":"disconnected"}', 0, True)
    custom = load_config(write(project, FN + "hub:\n  status:\n    topic: 'presence/{clientid}'\n"
                               "    online: up\n    offline: down\n    qos: 2\n    retain: false\n"), {}).hub.status
    assert custom is not None
    assert (custom.topic_for("c"), custom.online, custom.offline, custom.qos, custom.retain) == (
        "presence/c", b"up", b"down", 2, False)


FUNCTION_HEAD = "functions:\n  - name: f\n    runtime: python\n    handler: index.handler\n    codedir: fn\n"

BAD_FUNCTIONS = [
    ("functions:\n  - runtime: python\n    handler: index.handler\n    codedir: fn\n",
     "functions[0].name", 2, "missing; expected the function's name"),
    (FUNCTION_HEAD + "  - name: f\n    runtime: sql\n    handler: select *\n",
     "functions[1].name", 6, "duplicate function name 'f' (first at functions[0].name, line 2)"),
    ("functions:\n  - name: f\n    runtime: ruby\n    handler: index.handler\n",
     "functions[0].runtime", 3, "expected one of python, node, sql, custom, got 'ruby'"),
    ("functions:\n  - name: f\n    runtime: python\n    codedir: fn\n",
     "functions[0].handler", 2, "missing; expected module.attribute"),
    ("functions:\n  - name: f\n    runtime: python\n    handler: index\n    codedir: fn\n",
     "functions[0].handler", 4, "expected module.attribute"),
    ("functions:\n  - name: f\n    runtime: node\n    handler: index.not-a-name\n    codedir: fn\n",
     "functions[0].handler", 4, "expected module.export"),
    ("functions:\n  - name: f\n    runtime: python\n    handler: index.handler\n",
     "functions[0].codedir", 2, "missing; expected the function's folder"),
    ("functions:\n  - name: f\n    runtime: node\n    handler: index.handler\n    codedir: nope\n",
     "functions[0].codedir", 5, "expected an existing directory"),
    ("functions:\n  - name: 'a b'\n    runtime: sql\n    handler: select *\n",
     "functions[0].name", 2, "expected a name of letters, digits"),
    ("functions: []\n", "functions", 1, "expected at least one function"),
    ("hub: {}\n", "functions", 1, "missing; expected a list of functions"),
    (FUNCTION_HEAD + "    instance: {min: 101}\n", "functions[0].instance.min", 6, "must be between 0 and 100, got 101"),
    (FUNCTION_HEAD + "    instance: {max: 0}\n", "functions[0].instance.max", 6, "must be between 1 and 100, got 0"),
    (FUNCTION_HEAD + "    instance: {min: 3, max: 2}\n", "functions[0].instance.min", 6,
     "must not be more than instance.max (2), got 3"),
    (FUNCTION_HEAD + "    instance: {concurrency: 0}\n", "functions[0].instance.concurrency", 6, "must be at least 1"),
    (FUNCTION_HEAD + "    instance: {timeout: 0s}\n", "functions[0].instance.timeout", 6, "must be more than 0"),
    (FUNCTION_HEAD + "    instance: {memory: 256}\n", "functions[0].instance.memory", 6,
     "must be at least 1m, got '256' (a bare number is bytes)"),
    (FUNCTION_HEAD + "    instance: {message: {length: {max: 4q}}}\n", "functions[0].instance.message.length.max", 6,
     "expected a size like 512k"),
    (FUNCTION_HEAD + "    instance: {message: {size: 4m}}\n", "functions[0].instance.message.size", 6,
     "unknown key; expected one of: length"),
    (FUNCTION_HEAD + "    instance: [1]\n", "functions[0].instance", 6, "expected a mapping"),
    (FUNCTION_HEAD + "    env: {EDGEFN_INSTANCE_ADDRESS: x}\n", "functions[0].env.EDGEFN_INSTANCE_ADDRESS", 6,
     "reserved for edgefn"),
    (FUNCTION_HEAD + "    env: {A: {b: 1}}\n", "functions[0].env.A", 6, "expected a string, got a mapping"),
]


@pytest.mark.parametrize(("text", "path", "line", "fragment"), BAD_FUNCTIONS, ids=[c[1] for c in BAD_FUNCTIONS])
def test_a_bad_function_is_reported_with_its_path_line_and_expectation(
    project: Path, text: str, path: str, line: int, fragment: str
) -> None:
    problem = only(fail(project, text))
    assert (problem.path, problem.line) == (path, line)
    assert fragment in problem.message


def test_every_problem_is_reported_at_once_in_line_order(project: Path) -> None:
    text = FN + (
        "    instance: {max: 101}\n"
        "rules:\n"
        "  - subscribe: {topic: t, qos: 3}\n"
        "    function: {name: nope}\n"
        "    publish: {topic: 'o/#'}\n"
        "logger: {level: loud}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(project, text), {})
    problems = caught.value.problems
    assert [p.path for p in problems] == [
        "functions[0].instance.max", "rules[0].subscribe.qos", "rules[0].function.name",
        "rules[0].publish.topic", "logger.level",
    ]
    assert [p.line for p in problems] == [6, 8, 9, 10, 11]
    lines = str(caught.value).splitlines()
    assert len(lines) == 5
    assert lines[0] == f"{project / 'config.yml'}:6: functions[0].instance.max: must be between 1 and 100, got 101"


def test_yaml_syntax_errors_carry_line_and_column(project: Path) -> None:
    problem = only(fail(project, FN + "rules: [\n  {a: 1}\n  b\n"))
    assert problem.path == "" and problem.line is not None and problem.column is not None
    assert problem.message.startswith("YAML syntax error:")
    assert str(problem).startswith(f"{project / 'config.yml'}:{problem.line}:{problem.column}: YAML syntax error")


@pytest.mark.parametrize(("text", "fragment"), [("", "the file is empty"), ("- a\n- b\n", "expected a mapping")])
def test_the_document_must_be_a_mapping(project: Path, text: str, fragment: str) -> None:
    problem = only(fail(project, text))
    assert problem.path == "" and fragment in problem.message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file: No such file"):
        load_config(tmp_path / "nope.yml")


def test_duplicate_keys_are_errors(project: Path) -> None:
    problem = only(fail(project, FN + "logger: {level: info}\nlogger: {level: debug}\n"))
    assert (problem.path, problem.line) == ("logger", 7)
    assert "duplicate key (first at line 6)" in problem.message


def test_yaml_anchors_and_merge_keys_work(project: Path) -> None:
    text = FN + "    instance: &pool {max: 3, timeout: 5s}\n  - <<: *f\n    name: g\n".replace("*f", "*base")
    text = text.replace("  - name: f\n", "  - &base\n    name: f\n", 1)
    config = load_config(write(project, text), {})
    assert config.function("g").instance.max == 3 and config.function("g").codedir == project / "fn"


# -- Baetyl-only keys and sql functions warn -----------------------------------------------------

BAETYL = """\
hub:
  address: tcp://127.0.0.1:1883
  timeout: 30s
  validatesubs: true
  buffersize: 10
functions:
  - name: f
    service: function-python
    runtime: python
    handler: index.handler
    codedir: fn
logger: {level: info, age: {max: 15}, size: {max: 50}, backup: {max: 15}}
"""


def test_baetyl_only_keys_warn_but_load(project: Path) -> None:
    config = load_config(write(project, BAETYL), {})
    assert [(w.path, w.line) for w in config.warnings] == [
        ("hub.timeout", 3), ("hub.validatesubs", 4), ("hub.buffersize", 5), ("functions[0].service", 8),
        ("logger.age", 12), ("logger.size", 12), ("logger.backup", 12),
    ]
    assert all("a Baetyl setting edgefn does not use" in w.message for w in config.warnings)


def test_sql_functions_take_only_message_length_max_and_warn_about_the_rest(project: Path) -> None:
    text = """\
    functions:
      - name: q
        runtime: sql
        handler: select a where b > 1
        codedir: fn
        instance: {min: 1, max: 500, timeout: nonsense, message: {length: {max: 64k}}}
    """
    config = load_config(write(project, text), {})
    assert config.function("q").instance == InstanceConfig(message_max=64 * 1024)
    assert config.function("q").codedir is None
    assert [w.path for w in config.warnings] == [
        "functions[0].codedir", "functions[0].instance.min", "functions[0].instance.max",
        "functions[0].instance.timeout",
    ]
    assert "does not apply to sql functions" in config.warnings[1].message


def test_warnings_ride_along_with_errors(project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(project, BAETYL + "shutdown: {timeout: -1}\n"), {})
    assert [p.path for p in caught.value.problems] == ["shutdown.timeout"]
    assert len(caught.value.warnings) == 7


# -- paths and addresses ------------------------------------------------------------------------


def test_paths_are_relative_to_the_config_file_not_the_working_directory(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = FN + "server: {address: 'unix:run/edgefn.sock'}\nlogger: {path: logs/x.log}\n"
    (project / "run").mkdir()
    path = write(project, text)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("conf") / "config.yml", {})
    assert config.path == path
    assert config.functions[0].codedir == project / "fn"
    assert config.server is not None and config.server.address == f"unix://{project / 'run' / 'edgefn.sock'}"
    assert config.logger.path == project / "logs" / "x.log"


@pytest.mark.parametrize(
    ("address", "normalised"),
    [("0.0.0.0:50051", "0.0.0.0:50051"), ("[::1]:0", "[::1]:0"), ("localhost:050051", "localhost:50051"),
     ("unix:///tmp/edgefn-test.sock", "unix:///tmp/edgefn-test.sock")],
)
def test_server_address_forms(project: Path, address: str, normalised: str) -> None:
    config = load_config(write(project, FN + f"server: {{address: '{address}', insecure: true}}\n"), {})
    assert config.server is not None and config.server.address == normalised


def test_problem_str_has_file_line_path_and_message() -> None:
    assert str(Problem("functions[1].instance.max", 12, "must be between 1 and 100, got 0", "config.yml")) == (
        "config.yml:12: functions[1].instance.max: must be between 1 and 100, got 0"
    )
    assert str(Problem("", None, "cannot read", "c.yml")) == "c.yml: cannot read"
    assert isinstance(load_config, object) and Config  # the public names import


@pytest.mark.parametrize("key", ["idletime", "evicttime"])
@pytest.mark.parametrize("written", ["1ns", "99ms", "0.05"])
def test_idletime_and_evicttime_are_at_least_100ms(project: Path, key: str, written: str) -> None:
    text = FN.replace("handler: index.handler", f"handler: index.handler\n    instance: {{{key}: '{written}'}}")
    with pytest.raises(ConfigError, match=rf"functions\[0\]\.instance\.{key}: must be at least 100ms"):
        load_config(write(project, text), {})
