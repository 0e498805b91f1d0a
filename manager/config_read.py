"""Reading a config document into the dataclasses of :mod:`edgefn.manager.config`.

Each reader takes the :class:`Section` of one part of the file, records a
problem for everything wrong (with its path and line) and returns the part's
dataclass, built from defaults where a value was wrong: ``load_config`` raises
as soon as any problem was recorded, so such a half-default object never
escapes. Bounds and defaults are Baetyl's (SPEC §3).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import yaml

from .addresses import DEFAULT_WEBSOCKET_PATH, HubAddress, parse_hub_address, parse_server_address
from .config import (
    RUNTIMES, Config, FrozenEnv, FunctionConfig, HubConfig, InstanceConfig, LoggerConfig,
    RuleConfig, ServerConfig, ShutdownConfig, TopicConfig,
)
from .logs import unwritable
from .yamldoc import Section, Value, is_null

T = TypeVar("T")


def _get(section: Section | None, key: str, read: Callable[[Value], T | None], default: T) -> T:
    """``read`` the key's value; ``default`` when absent or wrong (wrong is already reported)."""
    value = section.get(key) if section is not None else None
    result = read(value) if value is not None else None
    return default if result is None else result


def read_config(root: Value, path: Path) -> Config | None:
    """Read the whole document (its problems go to ``root.doc``); None if it is not a mapping."""
    top = root.section(_TOP_KEYS, example="{hub: ..., rules: [...], functions: [...]}")
    if top is None:
        return None
    functions, declared = _functions(top.require("functions", "a list of functions"))
    rules = tuple(
        rule for index, item in enumerate(_items(top.get("rules")))
        if (rule := _rule(item, index, declared)) is not None
    )
    return Config(
        path=path,
        hub=_hub(top.section("hub", _HUB_KEYS, _HUB_BAETYL, example="{address: tcp://host:1883}")),
        server=_server(top.section("server", _SERVER_KEYS, example="{address: 127.0.0.1:50051}")),
        rules=rules,
        functions=functions,
        logger=_logger(top.section("logger", _LOGGER_KEYS, _LOGGER_BAETYL, example="{level: info}")),
        shutdown=ShutdownConfig(_get(top.section("shutdown", ("timeout",)), "timeout", Value.duration, 30.0)),
    )


def _items(value: Value | None) -> list[Value]:
    return value.items() if value is not None else []


# -- hub and server ---------------------------------------------------------------------

_TOP_KEYS = ("hub", "server", "rules", "functions", "logger", "shutdown")
_HUB_KEYS = ("address", "username", "password", "ca", "cert", "key", "clientid",
             "keepalive", "cleansession", "interval", "embedded", "message")
_HUB_BAETYL = {
    "timeout": "edgefn retries a connection with backoff up to hub.interval",
    "validatesubs": "edgefn always checks that its subscriptions were granted",
    "buffersize": "edgefn bounds its queues itself",
}
_SERVER_KEYS = ("address", "ca", "cert", "key", "insecure", "token")
_MQTT_KEEPALIVE_MAX = 65535.0


def _hub(hub: Section | None) -> HubConfig:
    if hub is None:
        return HubConfig()
    address_value = hub.get("address")
    address = (address_value.string(empty_ok=True) if address_value else None) or None
    embedded = hub.section("embedded", ("port",), example="{port: 1883}")
    port = _get(embedded, "port", lambda value: value.integer(1, 65535), 1883)
    where: HubAddress | None = HubAddress("tcp", "127.0.0.1", port, DEFAULT_WEBSOCKET_PATH)
    if address is not None and address_value is not None:
        where = _hub_address(address_value, address)
        if embedded is not None:
            embedded.value.error("an embedded broker starts only without hub.address; "
                                 "remove one of the two")
    _check_hub_tls(hub, address, where.scheme if where else None)
    where = where or HubAddress("tcp", "127.0.0.1", port, DEFAULT_WEBSOCKET_PATH)
    return HubConfig(
        address=address,
        scheme=where.scheme,
        host=where.host,
        port=where.port,
        websocket_path=where.websocket_path,
        username=_get(hub, "username", _optional_text, None),
        password=_get(hub, "password", _optional_text, None),
        ca=_get(hub, "ca", _file, None),
        cert=_get(hub, "cert", _file, None),
        key=_get(hub, "key", _file, None),
        clientid=_get(hub, "clientid", Value.string, "edgefn"),
        keepalive=_get(hub, "keepalive", _keepalive, 60.0),
        cleansession=_get(hub, "cleansession", Value.boolean, False),
        interval=_get(hub, "interval", Value.duration, 60.0),
        embedded_port=port,
        message_max=_hub_message_max(hub),
    )


def _hub_message_max(hub: Section) -> int:
    """hub.message.length.max: results larger than this become Runtime.MessageTooLarge envelopes."""
    message = hub.section("message", ("length",), example="{length: {max: 256m}}")
    length = message.section("length", ("max",), example="{max: 256m}") if message else None
    return _get(length, "max", lambda value: value.size(1024, _MESSAGE_MAX), _MESSAGE_MAX)


def _hub_address(value: Value, address: str) -> HubAddress | None:
    try:
        return parse_hub_address(address)
    except ValueError as exc:
        value.error(str(exc))
        return None


def _check_hub_tls(hub: Section, address: str | None, scheme: str | None) -> None:
    """TLS files need a TLS address (scheme None: the address is wrong and already reported)."""
    present = [value for key in ("ca", "cert", "key") if (value := hub.get(key)) is not None]
    if present and (address is None or scheme in ("tcp", "ws")):
        present[0].error("TLS files need an ssl:// or wss:// hub.address")
    _check_pair(hub)


def _check_pair(section: Section) -> None:
    cert, key = section.get("cert"), section.get("key")
    lone = cert if key is None else key if cert is None else None
    if lone is not None:
        lone.error("cert and key go together: set both or neither")


def _keepalive(value: Value) -> float | None:
    seconds = value.duration()
    if seconds is not None and seconds > _MQTT_KEEPALIVE_MAX:
        value.error(f"must be at most {_MQTT_KEEPALIVE_MAX:.0f}s (MQTT's largest keepalive)")
        return None
    return seconds


def _server(server: Section | None) -> ServerConfig | None:
    if server is None:
        return None
    value = server.require("address", "host:port or unix:///path")
    address = None
    if value is not None and (text := value.string()) is not None:
        try:
            address = parse_server_address(text, value.doc.folder)
        except ValueError as exc:
            value.error(str(exc))
    _check_pair(server)
    ca, cert = server.get("ca"), server.get("cert")
    if ca is not None and cert is None:
        ca.error("ca asks clients for certificates (mutual TLS), which needs the server's cert and key")
    insecure = _get(server, "insecure", Value.boolean, False)
    if address and value is not None and cert is None and not insecure and not _loopback(address):
        value.error(f"{address} is reachable from other machines, and without TLS anyone there may call "
                    "every function: set server.cert and server.key, or server.insecure: true to accept it")
    token_value = server.get("token")
    token = token_value.string() if token_value is not None else None
    return ServerConfig(
        address=address or "",
        ca=_get(server, "ca", _file, None),
        cert=_get(server, "cert", _file, None),
        key=_get(server, "key", _file, None),
        insecure=insecure,
        token=token,
    )


def _loopback(address: str) -> bool:
    """True for a unix socket or a loopback host (only this machine can connect)."""
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def _optional_text(value: Value) -> str | None:
    return value.string(empty_ok=True) or None


def _file(value: Value) -> Path | None:
    return value.path_value("file")


# -- rules --------------------------------------------------------------------------------

_RULE_KEYS = ("clientid", "subscribe", "function", "publish", "error", "retry")
_TOPIC_EXAMPLE = "{topic: a/b, qos: 1}"


def _rule(item: Value, index: int, declared: Mapping[str, Value]) -> RuleConfig | None:
    rule = item.section(_RULE_KEYS, example="{subscribe: {topic: t}, function: {name: f}, "
                                            "publish: {topic: t/out}}")
    if rule is None:
        return None
    subscribe = _topic(rule, "subscribe", "a topic filter to subscribe to", required=True)
    function = _function_name(rule, declared)
    publish = _topic(rule, "publish", "a topic to publish results to", required=True)
    error = _topic(rule, "error", "a topic to publish error envelopes to", required=False)
    retry = rule.section("retry", ("max",), example="{max: 3}")
    retry_max = _get(retry, "max", lambda value: value.integer(1), 3)
    clientid = _get(rule, "clientid", Value.string, None)
    if subscribe is None or function is None or publish is None:
        return None
    return RuleConfig(clientid, subscribe, function, publish, error, retry_max, index)


def _function_name(rule: Section, declared: Mapping[str, Value]) -> str | None:
    value = rule.require("function", "a mapping like {name: sayhi}")
    function = value.section(("name",), example="{name: sayhi}") if value is not None else None
    name_value = function.require("name", "the name of a function in functions") if function else None
    if name_value is None:
        return None
    name = name_value.string()
    if name is not None and name not in declared:
        known = ", ".join(declared) or "none"
        name_value.error(f"no function named {name!r} in functions (defined: {known})")
        return None
    return name


def _topic(rule: Section, key: str, what: str, required: bool) -> TopicConfig | None:
    value = rule.require(key, f"a mapping like {_TOPIC_EXAMPLE}") if required else rule.get(key)
    section = value.section(("topic", "qos"), example=_TOPIC_EXAMPLE) if value is not None else None
    if section is None:
        return None
    qos = _get(section, "qos", _qos, 0)
    topic_value = section.require("topic", what)
    topic = topic_value.string() if topic_value is not None else None
    if topic_value is not None and topic is not None:
        if problem := _topic_problem(topic, filter=key == "subscribe"):
            topic_value.error(problem)
            topic = None
    return None if topic is None else TopicConfig(topic, qos)


def _topic_problem(topic: str, filter: bool) -> str | None:
    """What is wrong with an MQTT topic (a filter when ``filter``), or None."""
    if len(topic.encode()) > 65535:
        return "is longer than 65535 bytes, the most MQTT allows"
    if "\0" in topic:
        return "must not contain a NUL character"
    if not filter:
        if "+" in topic or "#" in topic:
            return f"a topic to publish to cannot hold the wildcards + or #, got {topic!r}"
        return None
    levels = topic.split("/")
    for position, level in enumerate(levels):
        if "#" in level and (level != "#" or position != len(levels) - 1):
            return f"'#' must be a whole level and the last one (as in a/b/#), got {topic!r}"
        if "+" in level and level != "+":
            return f"'+' must be a whole level (as in a/+/c), got {topic!r}"
    return None


def _qos(value: Value) -> int | None:
    qos = value.integer(0)
    if qos == 2:
        value.error("QoS 2 is not supported yet; expected 0 or 1")
        return None
    if qos is not None and qos > 2:
        value.error(f"expected QoS 0 or 1, got {qos}")
        return None
    return qos


# -- functions ----------------------------------------------------------------------------

_FUNCTION_KEYS = ("name", "runtime", "handler", "codedir", "env", "instance")
_FUNCTION_BAETYL = {"service": "edgefn starts instances from runtime: (python, node or sql)"}
_INSTANCE_KEYS = ("min", "max", "concurrency", "idletime", "evicttime", "timeout",
                  "starttimeout", "memory", "message", "backoff")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NODE_HANDLER = re.compile(r"[^\s/][^\s]*\.[A-Za-z_$][\w$]*")
# MQTT's largest payload; gRPC limits are set from it, so it must fit an int32 too.
_MESSAGE_MAX = 268_435_455
_MEMORY_MIN = 1024 * 1024
# idletime and evicttime below this would spin the eviction loop (evicttime: 1ns took a core).
_IDLE_MIN = 0.1


def _functions(value: Value | None) -> tuple[tuple[FunctionConfig, ...], dict[str, Value]]:
    """The valid functions, and every name declared (valid or not) for the rules' check."""
    declared: dict[str, Value] = {}
    items = _items(value)
    if value is not None and not items and isinstance(value.node, yaml.SequenceNode):
        value.error("expected at least one function")
    functions = tuple(
        function for index, item in enumerate(items)
        if (function := _function(item, index, declared)) is not None
    )
    return functions, declared


def _function(item: Value, index: int, declared: dict[str, Value]) -> FunctionConfig | None:
    function = item.section(_FUNCTION_KEYS, _FUNCTION_BAETYL,
                            example="{name: f, runtime: python, handler: index.handler, codedir: f}")
    if function is None:
        return None
    name = _declare(function, declared)
    runtime_value = function.require("runtime", "one of " + ", ".join(RUNTIMES))
    runtime = runtime_value.choice(RUNTIMES) if runtime_value is not None else None
    handler = _handler(function, runtime)
    codedir = _codedir(function, runtime)
    env = _env(function.get("env"), runtime)
    instance = _instance(function.section("instance", _INSTANCE_KEYS, example="{max: 2}"), runtime)
    if name is None or runtime is None or handler is None or (codedir is None and runtime != "sql"):
        return None
    return FunctionConfig(name, runtime, handler, codedir, env, instance, index)


def _declare(function: Section, declared: dict[str, Value]) -> str | None:
    value = function.require("name", "the function's name, unique among functions")
    name = value.string() if value is not None else None
    if name is None or value is None:
        return None
    if not _NAME.fullmatch(name):
        value.error(f"expected a name of letters, digits, '_', '.' and '-' (at most 128), got {name!r}")
    if name in declared:
        first = declared[name]
        value.error(f"duplicate function name {name!r} (first at {first.path}, line {first.line})")
        return None
    declared[name] = value
    return name


def _handler(function: Section, runtime: str | None) -> str | None:
    what = "the SQL statement" if runtime == "sql" else "module.attribute, like index.handler"
    value = function.require("handler", what)
    handler = value.string() if value is not None else None
    if handler is None or value is None:
        return None
    if runtime == "python" and not _python_handler(handler):
        value.error(f"expected module.attribute (Python names, like index.handler), got {handler!r}")
        return None
    if runtime == "node" and not _NODE_HANDLER.fullmatch(handler):
        value.error(f"expected module.export (like index.handler), got {handler!r}")
        return None
    if runtime == "sql" and not handler.strip():
        value.error("must not be empty; expected the SQL statement")
        return None
    return handler


def _python_handler(handler: str) -> bool:
    parts = handler.split(".")
    return len(parts) >= 2 and all(part.isidentifier() for part in parts)


def _codedir(function: Section, runtime: str | None) -> Path | None:
    if runtime == "sql":
        if (value := function.get("codedir")) is not None:
            value.warn("sql functions have no code folder; ignored")
        return None
    if runtime is None:  # an unknown runtime is already reported; check codedir only if given
        value = function.get("codedir")
    else:
        value = function.require("codedir", "the function's folder, relative to this file")
    return value.path_value("dir") if value is not None else None


def _env(value: Value | None, runtime: str | None) -> FrozenEnv:
    env = value.section((), example="{GREETING: hi}") if value is not None else None
    if env is None or value is None:
        return FrozenEnv()
    if runtime == "sql" and env.entries:
        value.warn("sql functions run in the manager and see no env; ignored")
    result: dict[str, str] = {}
    for name, entry in env.entries.items():
        if not _ENV_NAME.fullmatch(name):
            entry.error("expected an environment variable name (letters, digits and '_')")
        elif name.upper().startswith("EDGEFN_"):
            entry.error("names starting with EDGEFN_ are reserved for edgefn")
        elif (text := "" if is_null(entry.node) else entry.text()) is not None:
            result[name] = text
    return FrozenEnv(result)


def _instance(instance: Section | None, runtime: str | None) -> InstanceConfig:
    if instance is None:
        return InstanceConfig()
    message = instance.section("message", ("length",), example="{length: {max: 4m}}")
    length = message.section("length", ("max",), example="{max: 4m}") if message else None
    message_max = _get(length, "max", lambda value: value.size(1, _MESSAGE_MAX), 4 * 1024 * 1024)
    if runtime == "sql":
        for key, value in instance.entries.items():
            if key != "message":
                value.warn("does not apply to sql functions (SQL runs in the manager); ignored")
        return InstanceConfig(message_max=message_max)
    backoff = instance.section("backoff", ("max",), example="{max: 1m}")
    low = _get(instance, "min", lambda value: value.integer(0, 100), 0)
    high = _get(instance, "max", lambda value: value.integer(1, 100), 1)
    if low > high:
        instance.entries["min"].error(f"must not be more than instance.max ({high}), got {low}")
    return InstanceConfig(
        min=low,
        max=high,
        concurrency=_get(instance, "concurrency", lambda value: value.integer(1), 1),
        idletime=_get(instance, "idletime", _at_least(_IDLE_MIN), 600.0),
        evicttime=_get(instance, "evicttime", _at_least(_IDLE_MIN), 60.0),
        timeout=_get(instance, "timeout", Value.duration, 30.0),
        starttimeout=_get(instance, "starttimeout", Value.duration, 10.0),
        memory=_get(instance, "memory", _memory, None),
        message_max=message_max,
        backoff_max=_get(backoff, "max", Value.duration, 60.0),
    )


def _at_least(low: float) -> Callable[[Value], float | None]:
    """A duration reader refusing less than ``low`` seconds."""
    def read(value: Value) -> float | None:
        seconds = value.duration()
        if seconds is not None and seconds < low:
            value.error(f"must be at least {low * 1000:g}ms, got {value.text()!r}")
            return None
        return seconds
    return read


def _memory(value: Value) -> int | None:
    size = value.size(0)
    if size is not None and size < _MEMORY_MIN:
        value.error(f"must be at least 1m, got {value.text()!r} (a bare number is bytes)")
        return None
    return size


# -- logger -------------------------------------------------------------------------------

_LOGGER_KEYS = ("level", "format", "path")
_LOGGER_BAETYL = {key: "edgefn does not rotate its log file" for key in ("age", "size", "backup")}


def _logger(logger: Section | None) -> LoggerConfig:
    path_value = logger.get("path") if logger is not None else None
    path = None
    if path_value is not None and path_value.string(empty_ok=True):
        path = path_value.path_value("any")
        if path is not None and (why := unwritable(path)) is not None:
            path_value.error(f"cannot write a log file at {path}: {why}")
    return LoggerConfig(
        level=_get(logger, "level", lambda value: value.choice(("debug", "info", "warn", "error")), "info"),
        format=_get(logger, "format", lambda value: value.choice(("text", "json")), "text"),
        path=path,
    )
