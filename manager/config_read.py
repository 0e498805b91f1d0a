"""Reading a config document into the dataclasses of :mod:`edgefn.manager.config`.

Each reader takes the :class:`Section` of one part of the file, records a
problem for everything wrong (with its path and line) and returns the part's
dataclass, built from defaults where a value was wrong: ``load_config`` raises
as soon as any problem was recorded, so such a half-default object never
escapes. Bounds and defaults are Baetyl's (SPEC §3).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edgefn.wire.limits import MQTT_MESSAGE_MAX

from .addresses import DEFAULT_WEBSOCKET_PATH, HubAddress, parse_hub_address, parse_server_address
from .config import (
    Config, HubConfig, LoggerConfig, MetricsConfig,
    RuleConfig, ServerConfig, ShutdownConfig, StatusConfig, TopicConfig,
)
from .config_functions import read_functions
from .config_keys import keys
from .logs import unwritable
from .topics import CLIENTID, Template, TemplateError, compile_template, filter_depth, invalid_topic
from .yamldoc import Section, Value, items_of, read_key

if TYPE_CHECKING:
    from .config_schedule import Scheduled


def read_config(root: Value, path: Path) -> Config | None:
    """Read the whole document (its problems go to ``root.doc``); None if it is not a mapping."""
    top = root.section(_TOP_KEYS, example="{hub: ..., rules: [...], functions: [...]}")
    if top is None:
        return None
    functions, declared = read_functions(top.require("functions", "a list of functions"))
    rules = tuple(
        rule for index, item in enumerate(items_of(top.get("rules")))
        if (rule := _rule(item, index, declared)) is not None
    )
    hub = _hub(top.section("hub", _HUB_KEYS, _HUB_BAETYL, example="{address: tcp://host:1883}"))
    metrics = _metrics(top.section("metrics", keys("metrics"), example="{address: 127.0.0.1:9464}"))
    return Config(
        path=path,
        hub=hub,
        server=_server(top.section("server", _SERVER_KEYS, example="{address: 127.0.0.1:50051}")),
        rules=rules,
        functions=functions,
        logger=_logger(top.section("logger", _LOGGER_KEYS, _LOGGER_BAETYL, example="{level: info}")),
        shutdown=ShutdownConfig(read_key(top.section("shutdown", keys("shutdown")), "timeout", Value.duration, 30.0)),
        metrics=metrics,
        workers=_workers(top.get("workers"), hub, metrics, rules),
    )


# -- workers ------------------------------------------------------------------------------

WORKERS_MAX = 64  # a typo (workers: 1000) must not fork a thousand managers


def _workers(value: Value | None, hub: HubConfig, metrics: MetricsConfig | None,
             rules: tuple[RuleConfig, ...]) -> int:
    """``workers``: how many manager processes share the rules (each one needs the broker's
    shared subscriptions, so not the embedded broker, which runs inside one manager)."""
    workers = (value.integer(1, WORKERS_MAX) if value is not None else None) or 1
    if value is None or workers == 1:
        return workers
    if hub.embedded:
        value.error(f"workers: {workers} shares the rules' inputs through the broker's shared "
                    "subscriptions, which the embedded broker (development only) lacks: set hub.address")
    if metrics is not None and metrics.port and metrics.port + workers - 1 > 65535:
        value.error(f"worker {workers - 1} would serve metrics on port {metrics.port + workers - 1} "
                    "(metrics.address's port + its index), above 65535: lower the port")
    if hub.status is not None and CLIENTID not in hub.status.topic.parts:
        value.warn("every worker has its own connection, but hub.status.topic has no {clientid}: "
                   "the workers' presence messages overwrite each other")
    if not any(rule.subscribe is not None for rule in rules):
        value.warn(f"no rule subscribes to a topic, so workers 1 to {workers - 1} have nothing to do "
                   "(schedules and the gRPC server run in worker 0 only)")
    return workers


# -- hub and server ---------------------------------------------------------------------

_TOP_KEYS = keys("")
_HUB_KEYS = keys("hub")
_HUB_BAETYL = {
    "timeout": "edgefn retries a connection with backoff up to hub.interval",
    "validatesubs": "edgefn always checks that its subscriptions were granted",
    "buffersize": "edgefn bounds its queues itself",
}
_SERVER_KEYS = keys("server")
_MQTT_KEEPALIVE_MAX = 65535.0


def _hub(hub: Section | None) -> HubConfig:
    if hub is None:
        return HubConfig()
    address_value = hub.get("address")
    address = (address_value.string(empty_ok=True) if address_value else None) or None
    embedded = hub.section("embedded", keys("hub.embedded"), example="{port: 1883}")
    port = read_key(embedded, "port", lambda value: value.integer(1, 65535), 1883)
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
        username=read_key(hub, "username", _optional_text, None),
        password=read_key(hub, "password", _optional_text, None),
        ca=read_key(hub, "ca", _file, None),
        cert=read_key(hub, "cert", _file, None),
        key=read_key(hub, "key", _file, None),
        clientid=read_key(hub, "clientid", Value.string, "edgefn"),
        keepalive=read_key(hub, "keepalive", _keepalive, 60.0),
        cleansession=read_key(hub, "cleansession", Value.boolean, False),
        interval=read_key(hub, "interval", Value.duration, 60.0),
        embedded_port=port,
        status=_status(hub.get("status")),
        message_max=_hub_message_max(hub),
    )


_STATUS_KEYS = keys("hub.status")
_STATUS_EXAMPLE = "{topic: edgefn/{clientid}/status, retain: true}"


def _status(value: Value | None) -> StatusConfig | None:
    """``hub.status`` (presence); an empty mapping turns it on with the defaults."""
    status = value.section(_STATUS_KEYS, example=_STATUS_EXAMPLE) if value is not None else None
    if status is None:
        return None
    defaults = StatusConfig(compile_template("edgefn/{clientid}/status"))
    topic_value = status.get("topic")
    template = defaults.topic
    if topic_value is not None and (text := topic_value.string()) is not None:
        try:
            template = compile_template(text)
        except TemplateError as exc:
            topic_value.error(str(exc))
        else:
            if any(isinstance(part, int) and part != CLIENTID for part in template.parts):
                topic_value.error(f"a connection's status topic may use {{clientid}} only, got {text!r}")
            elif problem := invalid_topic(template.render(None, "", "", "x") or ""):
                topic_value.error(f"cannot be published to: {problem}")
    return StatusConfig(
        topic=template,
        online=read_key(status, "online", _payload, defaults.online),
        offline=read_key(status, "offline", _payload, defaults.offline),
        qos=read_key(status, "qos", _qos, defaults.qos),
        retain=read_key(status, "retain", Value.boolean, defaults.retain),
    )


def _payload(value: Value) -> bytes | None:
    text = value.string(empty_ok=True)
    return None if text is None else text.encode()


def _hub_message_max(hub: Section) -> int:
    """hub.message.length.max: results larger than this become Runtime.MessageTooLarge envelopes."""
    message = hub.section("message", keys("hub.message"), example="{length: {max: 256m}}")
    length = message.section("length", keys("hub.message.length"), example="{max: 256m}") if message else None
    return read_key(length, "max", lambda value: value.size(1024, MQTT_MESSAGE_MAX), MQTT_MESSAGE_MAX)


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
    if value.text() in ("-1", "-1s"):  # Baetyl's "never ping"
        value.warn("Baetyl's -1 for no keepalive; edgefn writes it keepalive: 0")
        return 0.0
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
    insecure = read_key(server, "insecure", Value.boolean, False)
    if address and value is not None and cert is None and not insecure and not _loopback(address):
        value.error(f"{address} is reachable from other machines, and without TLS anyone there may call "
                    "every function: set server.cert and server.key, or server.insecure: true to accept it")
    token_value = server.get("token")
    token = token_value.string() if token_value is not None else None
    return ServerConfig(
        address=address or "",
        ca=read_key(server, "ca", _file, None),
        cert=read_key(server, "cert", _file, None),
        key=read_key(server, "key", _file, None),
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

_SCHEDULE_KEYS = ("schedule", "time_filter", "payload")
_RULE_KEYS = keys("rules[]")
_TOPIC_EXAMPLE = "{topic: a/b, qos: 1}"


def _rule(item: Value, index: int, declared: Mapping[str, Value]) -> RuleConfig | None:
    rule = item.section(_RULE_KEYS, example="{subscribe: {topic: t}, function: {name: f}, "
                                            "publish: {topic: t/out}}")
    if rule is None:
        return None
    scheduled = _scheduled(rule)  # also reports subscribe and schedule both or neither
    subscribe = _topic(rule, "subscribe", "a topic filter to subscribe to", required=False)
    function = _function_name(rule, declared)
    depth = filter_depth(subscribe.topic) if subscribe is not None else None
    has_input = scheduled is None
    publish = _output(rule, "publish", "a topic to publish results to", depth, has_input, required=True)
    error = _output(rule, "error", "a topic to publish error envelopes to", depth, has_input, required=False)
    retry = rule.section("retry", keys("rules[].retry"), example="{max: 3}")
    retry_max = read_key(retry, "max", lambda value: value.integer(1), 3)
    clientid = read_key(rule, "clientid", Value.string, None)
    if (subscribe is None and scheduled is None) or function is None or publish is None:
        return None
    if scheduled is not None:
        return RuleConfig(clientid, None, function, publish, error, retry_max, index,
                          scheduled.schedule, scheduled.time_filter, scheduled.payload)
    return RuleConfig(clientid, subscribe, function, publish, error, retry_max, index)


def _scheduled(rule: Section) -> Scheduled | None:
    """The rule's schedule part (see config_schedule), read only when the rule has one of its keys:
    a config without scheduled rules never loads the time zone and cron machinery."""
    if rule.get("subscribe") is not None and not any(rule.get(key) is not None for key in _SCHEDULE_KEYS):
        return None
    from .config_schedule import read_scheduled

    return read_scheduled(rule)


def _function_name(rule: Section, declared: Mapping[str, Value]) -> str | None:
    value = rule.require("function", "a mapping like {name: sayhi}")
    function = value.section(keys("rules[].function"), example="{name: sayhi}") if value is not None else None
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
    section = value.section(keys("rules[].subscribe"), example=_TOPIC_EXAMPLE) if value is not None else None
    if section is None:
        return None
    qos = read_key(section, "qos", _qos, 0)
    topic_value = section.require("topic", what)
    topic = topic_value.string() if topic_value is not None else None
    if topic_value is not None and topic is not None:
        if problem := _topic_problem(topic, filter=True):
            topic_value.error(problem)
            topic = None
    return None if topic is None else TopicConfig(topic, qos)


_OUTPUT_EXAMPLE = "{topic: devices/{2}/reply, qos: 1, retain: false}"


def _output(
    rule: Section, key: str, what: str, depth: int | None, has_input: bool, required: bool
) -> TopicConfig | None:
    """``publish`` or ``error``: a topic template checked against the subscription's ``depth``
    (a scheduled rule has no input topic to take levels from)."""
    value = rule.require(key, f"a mapping like {_OUTPUT_EXAMPLE}") if required else rule.get(key)
    section = value.section(keys(f"rules[].{key}"), example=_OUTPUT_EXAMPLE) if value is not None else None
    if section is None:
        return None
    qos = read_key(section, "qos", _qos, 0)
    retain = read_key(section, "retain", Value.boolean, False)
    topic_value = section.require("topic", what)
    topic = topic_value.string() if topic_value is not None else None
    if topic_value is None or topic is None:
        return None
    try:
        template = compile_template(topic)
    except TemplateError as exc:
        topic_value.error(str(exc))
        return None
    if problem := _template_problem(template, depth):
        topic_value.error(problem)
        return None
    if not has_input and template.uses_input:
        topic_value.error("a scheduled rule has no input topic: {N} and {topic} cannot be used here "
                          "({function} and {clientid} can)")
        return None
    return TopicConfig(topic, qos, retain, template)


def _template_problem(template: Template, depth: int | None) -> str | None:
    """What makes every rendering of ``template`` wrong, or None."""
    # Placeholders hold no wildcard or NUL, so the text has them only in its literal parts.
    if problem := _topic_problem(template.text, filter=False):
        return problem
    if template.literal == "":
        return "must not be empty"
    if depth is not None and template.max_level > depth:
        return (f"{{{template.max_level}}} names level {template.max_level}, but the subscription's "
                f"topics have {depth} level{'s' if depth != 1 else ''} (levels count from 1; "
                "a filter ending in # allows any level)")
    return None


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
    return value.integer(0, 2)


# -- logger -------------------------------------------------------------------------------

_LOGGER_KEYS = keys("logger")
_LOGGER_BAETYL = {key: "edgefn does not rotate its log file" for key in ("age", "size", "backup")}


def _logger(logger: Section | None) -> LoggerConfig:
    path_value = logger.get("path") if logger is not None else None
    path = None
    if path_value is not None and path_value.string(empty_ok=True):
        path = path_value.path_value("any")
        if path is not None and (why := unwritable(path)) is not None:
            path_value.error(f"cannot write a log file at {path}: {why}")
    return LoggerConfig(
        level=read_key(logger, "level", lambda value: value.choice(("debug", "info", "warn", "error")), "info"),
        format=read_key(logger, "format", lambda value: value.choice(("text", "json")), "text"),
        path=path,
        status=read_key(logger, "status", _seconds_or_off, 300.0),
    )


def _seconds_or_off(value: Value) -> float | None:
    """A duration, or 0 for never."""
    if value.text() in ("0", "0s"):
        return 0.0
    return value.duration()


# -- metrics ------------------------------------------------------------------------------


def _metrics(metrics: Section | None) -> MetricsConfig | None:
    if metrics is None:
        return None
    value = metrics.get("address")
    text = (value.string() if value is not None else None) or "127.0.0.1:9464"
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        (value or metrics.value).error(f"expected host:port, like 127.0.0.1:9464, got {text!r}")
        return None
    return MetricsConfig(host, int(port))
