"""The configuration: one YAML file read once into frozen dataclasses (SPEC §3).

:func:`load_config` reads the file, expands ``${VAR}``, resolves every path
against the file's folder, applies Baetyl's defaults and bounds, and either
returns a :class:`Config` every other module can trust or raises
:class:`ConfigError` listing every problem at once, each with its YAML path and
line. Baetyl-only keys load with a warning (``Config.warnings``; the caller logs
them). A config with functions but no rules is valid: its functions are still
callable through the gRPC server and ``edgefn call``; at least one function is
required.

``${NAME}`` and ``${NAME:-default}`` (default when unset or empty) expand inside
scalar values after parsing, so a value never adds YAML structure; ``$$`` is a
literal ``$``, and any other ``$`` stays as written (``$SYS/#`` needs no escape).
An unset variable without a default is a problem naming it.

What this module does not check: that a handler imports or that a SQL statement
compiles. ``edgefn check`` does both, and the SQL engine at load.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgefn.wire.limits import MQTT_MESSAGE_MAX

from .topics import Template, TemplateError, compile_template
from .units import parse_duration, parse_size
from .yamldoc import ConfigError, Document, Problem, Value, compose

if TYPE_CHECKING:  # only scheduled rules need them: zoneinfo and cron load with the first one
    from .identity import Identity  # (and instance.user: config_functions reads it)
    from .schedule import Schedule
    from .timefilter import TimeFilter

__all__ = [
    "Config", "ConfigError", "FrozenEnv", "FunctionConfig", "HubConfig", "InstanceConfig",
    "LoggerConfig", "Problem", "RuleConfig", "ServerConfig", "ShutdownConfig",
    "MetricsConfig", "StatusConfig", "TopicConfig", "load_config", "parse_duration", "parse_size",
]

# The largest config file read: thousands of rules fit; PyYAML reads about 2 MB a second.
CONFIG_MAX = 4 * 1024 * 1024


class FrozenEnv(Mapping[str, str]):
    """A read-only, hashable mapping of environment variables."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenEnv({self._data!r})"


@dataclass(frozen=True)
class StatusConfig:
    """Presence (``hub.status``): each connection's online message, and offline as its last will."""

    topic: Template  # may use {clientid} only
    online: bytes = b'{"status":"connected"}'
    offline: bytes = b'{"status":"disconnected"}'
    qos: int = 0
    retain: bool = True

    def topic_for(self, clientid: str) -> str:
        """The status topic of the connection ``clientid``."""
        return self.topic.render(None, "", "", clientid) or ""


@dataclass(frozen=True)
class HubConfig:
    """The MQTT hub every rule's connection goes to (an embedded broker without address)."""

    address: str | None = None  # as written; None → embedded broker
    scheme: str = "tcp"  # tcp | ssl | ws | wss (tcp for the embedded broker)
    host: str = "127.0.0.1"
    port: int = 1883  # the address's, else tcp 1883, ssl 8883, ws 80, wss 443; embedded_port when embedded
    websocket_path: str = "/mqtt"  # ws/wss only: the address's path, "/mqtt" if it has none
    username: str | None = None
    password: str | None = None
    ca: Path | None = None  # absolute; ssl/wss only
    cert: Path | None = None
    key: Path | None = None
    clientid: str = "edgefn"  # the connection of every rule without its own clientid
    keepalive: float = 60.0
    cleansession: bool = False
    interval: float = 60.0  # max reconnect backoff
    embedded_port: int = 1883  # hub.embedded.port
    status: StatusConfig | None = None  # hub.status: presence; None → off
    message_max: int = MQTT_MESSAGE_MAX  # hub.message.length.max: the largest payload the hub takes (MQTT's most)

    @property
    def embedded(self) -> bool:
        """True when edgefn starts its own broker (no hub.address)."""
        return self.address is None

    @property
    def tls(self) -> bool:
        return self.scheme in ("ssl", "wss")


@dataclass(frozen=True)
class ServerConfig:
    """The optional gRPC server for direct calls."""

    address: str  # "host:port" (port 0: any free port) or "unix:///absolute/path"
    ca: Path | None = None  # with cert/key: mutual TLS
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False  # allows a non-loopback address without TLS
    token: str | None = None  # when set, every call but health needs "authorization: Bearer <token>"

    def __repr__(self) -> str:  # never print the token
        token = "***" if self.token else None
        return f"ServerConfig(address={self.address!r}, cert={self.cert!r}, insecure={self.insecure}, token={token})"


@dataclass(frozen=True)
class TopicConfig:
    """``subscribe``, ``publish`` or ``error`` of a rule.

    ``template`` is ``topic`` compiled once (the config reader checks it for
    publish and error; a subscribe filter's is unused, and None if the filter
    does not compile). ``retain`` sets the RETAIN flag of what is published there.
    """

    topic: str
    qos: int = 0
    retain: bool = False
    template: Template | None = None

    def __post_init__(self) -> None:
        if self.template is None:
            try:
                object.__setattr__(self, "template", compile_template(self.topic))
            except TemplateError:
                pass  # a subscribe filter may hold braces; publish and error were checked at load


@dataclass(frozen=True)
class RuleConfig:
    """subscribe (or schedule) → function → publish (errors to ``error`` when set, else ``publish``)."""

    clientid: str | None  # None → hub.clientid
    subscribe: TopicConfig | None  # None: a scheduled rule
    function: str  # the function's name
    publish: TopicConfig
    error: TopicConfig | None = None
    retry_max: int = 3  # total attempts, ≥ 1
    index: int = 0  # position in rules[], for messages
    schedule: Schedule | None = None  # set exactly when subscribe is None
    time_filter: TimeFilter | None = None
    payload: bytes = b"{}"  # a scheduled call's event base, as JSON


@dataclass(frozen=True)
class InstanceConfig:
    """A function's pool (SPEC §8). Durations in seconds, sizes in bytes."""

    min: int = 0
    max: int = 1
    concurrency: int = 1
    idletime: float = 600.0
    evicttime: float = 60.0
    timeout: float = 30.0
    starttimeout: float = 10.0
    memory: int | None = None
    message_max: int = 4 * 1024 * 1024
    backoff_max: float = 60.0
    identity: Identity | None = None  # instance.user/group: who the instances run as (None: the manager)


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    runtime: str  # a kind of runners.KINDS: python, node, sql, custom
    handler: str  # module.attribute (python, node); the statement (sql); anything (custom)
    codedir: Path | None  # absolute; None for sql
    env: Mapping[str, str] = field(default_factory=FrozenEnv)
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    index: int = 0  # position in functions[], for messages
    command: tuple[str, ...] = ()  # custom: the runtime's command line
    handshake: bool = False  # custom: it writes edgefn's handshake line (and may offer Talk)


@dataclass(frozen=True)
class LoggerConfig:
    level: str = "info"  # debug | info | warn | error
    format: str = "text"  # text | json
    path: Path | None = None  # absolute; also log to this file
    status: float = 300.0  # seconds between per-function status lines at info; 0: none


@dataclass(frozen=True)
class ShutdownConfig:
    timeout: float = 30.0  # how long in-flight work may take to drain


@dataclass(frozen=True)
class MetricsConfig:
    """The HTTP endpoint: /metrics (Prometheus), /healthz, /readyz."""

    host: str = "127.0.0.1"
    port: int = 9464  # 0: any free port

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Config:
    """A whole, valid configuration."""

    path: Path  # the config file, absolute
    hub: HubConfig
    server: ServerConfig | None
    rules: tuple[RuleConfig, ...]
    functions: tuple[FunctionConfig, ...]
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    metrics: MetricsConfig | None = None  # None: no endpoint
    workers: int = 1  # manager processes sharing the rules' inputs (see manager/workers.py)
    warnings: tuple[Problem, ...] = ()

    def function(self, name: str) -> FunctionConfig:
        """The function named ``name``; KeyError if there is none."""
        for function in self.functions:
            if function.name == name:
                return function
        raise KeyError(name)

    def rules_for(self, name: str) -> tuple[RuleConfig, ...]:
        """The rules that call the function named ``name``."""
        return tuple(rule for rule in self.rules if rule.function == name)


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at ``path``.

    ``${VAR}`` expands from ``environ`` (default: ``os.environ``). Raises
    ConfigError with every problem found; warnings ride on the result.
    """
    shown = os.fspath(path)
    absolute = Path(shown).expanduser().resolve()
    try:
        text = _read(absolute)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([Problem("", None, f"cannot read the config file: {reason}", shown)]) from exc
    except ValueError as exc:
        raise ConfigError([Problem("", None, str(exc), shown)]) from None
    doc = Document(shown, absolute.parent, os.environ if environ is None else environ)
    node = compose(text, doc)
    config = None
    if node is None and not doc.problems:
        doc.error("", None, "the file is empty; expected a mapping with functions (and rules)")
    elif node is not None:
        # The readers build this module's dataclasses, so they import it, not the reverse.
        from .config_read import read_config

        config = read_config(Value(doc, node, ""), absolute)
    if doc.problems or config is None:
        raise ConfigError(_by_line(doc.problems), _by_line(doc.warnings))
    return replace(config, warnings=_by_line(doc.warnings))


def _read(path: Path) -> str:
    """The file's text; ValueError past ``CONFIG_MAX`` (PyYAML would take minutes, and memory)."""
    with path.open("rb") as file:
        data = file.read(CONFIG_MAX + 1)
    if len(data) > CONFIG_MAX:
        raise ValueError(f"the config file is larger than {CONFIG_MAX // (1024 * 1024)} MiB; "
                         "is it the right file?")
    return data.decode("utf-8")


def _by_line(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda problem: problem.line or 0))
