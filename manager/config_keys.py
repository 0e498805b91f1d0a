"""Every key of the config file, in one table: its type, default, bound and meaning.

The readers (:mod:`edgefn.manager.config_read`, :mod:`edgefn.manager.config_functions`,
:mod:`edgefn.manager.config_schedule`) take the keys each section accepts from
here (:func:`keys`), and ``docs/config.md`` is generated from the same table
(``python -m edgefn.manager.config_docs``), so a key cannot be accepted without
being documented, nor documented without being accepted. A test regenerates the
document and compares, and another checks the defaults written here against the
dataclasses' own.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SECTIONS", "Key", "Section", "keys"]


@dataclass(frozen=True)
class Key:
    """One key of a section."""

    name: str
    type: str  # as a reader sees it: duration, size, integer, boolean, string, path, topic, mapping, list…
    default: str  # as it would be written in the file; "" when there is none
    meaning: str
    bound: str = ""  # what values are allowed, when more than the type says


@dataclass(frozen=True)
class Section:
    """One mapping of the file, at ``path`` (``rules[]`` stands for every rule)."""

    path: str
    meaning: str
    keys: tuple[Key, ...]
    example: str = ""  # YAML, shown under the section's table


_TOPIC = "an MQTT topic (a publish topic may use {N}, {topic}, {function}, {clientid})"
_QOS = Key("qos", "integer", "0", "the MQTT QoS", "0, 1 or 2")

SECTIONS: tuple[Section, ...] = (
    Section("", "The file's top level. Only `functions` is required.", (
        Key("hub", "mapping", "", "the MQTT broker every rule's connection goes to; without it, "
            "or without `hub.address`, an embedded broker starts (development only)"),
        Key("server", "mapping", "", "a gRPC server for direct calls (`edgefn call`); off without it"),
        Key("rules", "list", "[]", "subscribe (or schedule) → function → publish"),
        Key("functions", "list", "", "the functions, at least one", "required"),
        Key("logger", "mapping", "", "where and how the manager logs"),
        Key("shutdown", "mapping", "", "how stopping drains work in flight"),
        Key("metrics", "mapping", "", "a Prometheus endpoint with /metrics, /healthz and /readyz; "
            "off without it"),
        Key("workers", "integer", "1", "how many manager processes `edgefn run` starts; above 1 they share "
            "every rule's input through MQTT shared subscriptions (README: Scale-out); `edgefn dev` runs one",
            "1 to 64; above 1 needs hub.address"),
    )),
    Section("hub", "The MQTT broker.", (
        Key("address", "string", "", "the broker: tcp://, ssl://, ws:// or wss:// host:port[/path]; "
            "none: an embedded broker on 127.0.0.1"),
        Key("username", "string", "", "the MQTT user name"),
        Key("password", "string", "", "the MQTT password (write it as ${VAR} to keep it out of the file)"),
        Key("ca", "path", "", "the CA certificate that signed the broker's (ssl:// and wss:// only)"),
        Key("cert", "path", "", "this client's certificate for mutual TLS (with key)"),
        Key("key", "path", "", "this client's private key for mutual TLS (with cert)"),
        Key("clientid", "string", "edgefn", "the MQTT client id of every rule without its own clientid"),
        Key("keepalive", "duration", "1m", "the MQTT keepalive; 0 sends no pings", "at most 65535s"),
        Key("cleansession", "boolean", "false", "start a new MQTT session on every connect; false keeps "
            "the broker queuing QoS 1 messages while disconnected"),
        Key("interval", "duration", "1m", "the longest pause between reconnect attempts (the pause "
            "doubles from 500ms)"),
        Key("embedded", "mapping", "", "the embedded broker's settings; only without address"),
        Key("status", "mapping", "", "presence: each connection publishes an online message and leaves "
            "an offline one as its last will; {} turns it on with the defaults"),
        Key("message", "mapping", "", "limits on what the hub publishes"),
    ), "hub:\n  address: ssl://broker.example:8883\n  ca: certs/ca.pem\n  username: edge\n"
       "  password: ${HUB_PASSWORD}\n  clientid: edgefn-line-1\n  keepalive: 30s"),
    Section("hub.embedded", "The embedded broker (no `hub.address`; development only).", (
        Key("port", "integer", "1883", "the port it listens on, on 127.0.0.1", "1 to 65535"),
    ), "hub:\n  embedded: {port: 1884}"),
    Section("hub.status", "Presence messages, one topic per connection.", (
        Key("topic", "topic", "edgefn/{clientid}/status", "where each connection's status goes; "
            "may use {clientid} only"),
        Key("online", "string", '{"status":"connected"}', "published once connected"),
        Key("offline", "string", '{"status":"disconnected"}', "the last will, and published on a graceful stop"),
        _QOS,
        Key("retain", "boolean", "true", "publish both retained"),
    ), "hub:\n  status: {topic: \"plant/edgefn/{clientid}/status\", qos: 1}"),
    Section("hub.message", "Limits on what the hub publishes.", (
        Key("length", "mapping", "", "`max`: the size limits"),
    )),
    Section("hub.message.length", "The largest payload.", (
        Key("max", "size", "268435455", "a larger result becomes a Runtime.MessageTooLarge envelope",
            "1k to 268435455 bytes (MQTT's most, 256m less one byte)"),
    ), "hub:\n  message: {length: {max: 1m}}"),
    Section("server", "The gRPC server for direct calls (`baetyl.Function/Call`, health, reflection).", (
        Key("address", "string", "", "host:port (port 0: any free port) or unix:///absolute/path",
            "required; a non-loopback address needs TLS or insecure: true"),
        Key("ca", "path", "", "ask clients for certificates signed by this CA (mutual TLS)"),
        Key("cert", "path", "", "the server's certificate (with key): TLS"),
        Key("key", "path", "", "the server's private key (with cert)"),
        Key("insecure", "boolean", "false", "allow a non-loopback address without TLS"),
        Key("token", "string", "", "when set, every call but health needs `authorization: Bearer <token>`"),
    ), "server:\n  address: 127.0.0.1:50051\n  token: ${EDGEFN_SERVER_TOKEN}"),
    Section("rules[]", "One rule: an input (subscribe or schedule) → a function → outputs.", (
        Key("clientid", "string", "hub.clientid", "the connection it runs on; rules with the same "
            "clientid share one connection"),
        Key("subscribe", "mapping", "", "the input: a topic filter; a rule has subscribe or schedule"),
        Key("function", "mapping", "", "`name`: the function it calls", "required"),
        Key("publish", "mapping", "", "where results go", "required"),
        Key("error", "mapping", "publish", "where error envelopes go"),
        Key("retry", "mapping", "", "how often a failed call is tried"),
        Key("schedule", "mapping", "", "the input: fire on a schedule instead of a message"),
        Key("time_filter", "mapping", "", "a scheduled rule only: add a time window to its event"),
        Key("payload", "mapping", "{}", "a scheduled rule only: the event it sends (JSON)"),
    ), "rules:\n  - clientid: sayhi-1\n    subscribe: {topic: t, qos: 1}\n    function: {name: sayhi}\n"
       "    publish: {topic: t/hi, qos: 1}\n    error: {topic: t/hi/err, qos: 1}\n    retry: {max: 3}"),
    Section("rules[].subscribe", "The topic filter a rule takes messages from.", (
        Key("topic", "topic filter", "", "an MQTT filter (+ and # allowed)", "required"),
        _QOS,
    )),
    Section("rules[].function", "The function a rule calls.", (
        Key("name", "string", "", "the name of a function in functions", "required"),
    )),
    Section("rules[].publish", "Where results go (and envelopes, without `error`).", (
        Key("topic", "topic", "", _TOPIC, "required"),
        Key("qos", "integer", "0", "the MQTT QoS (never above the input's)", "0, 1 or 2"),
        Key("retain", "boolean", "false", "publish retained"),
    )),
    Section("rules[].error", "Where error envelopes go.", (
        Key("topic", "topic", "", _TOPIC, "required"),
        Key("qos", "integer", "0", "the MQTT QoS (never above the input's)", "0, 1 or 2"),
        Key("retain", "boolean", "false", "publish retained"),
    )),
    Section("rules[].retry", "Retries of calls that failed in a way worth retrying (a crash, a timeout).", (
        Key("max", "integer", "3", "total attempts", "at least 1"),
    )),
    Section("rules[].schedule", "When a scheduled rule fires: exactly one of frequency, every, cron.", (
        Key("frequency", "string", "", "once, minutely, hourly, daily or weekly (with the key it uses)"),
        Key("time_zone", "string", "UTC", "an IANA zone, like Europe/Berlin"),
        Key("date_time", "string", "", 'frequency once: "YYYY-MM-DD HH:MM"'),
        Key("minute", "integer", "1", "frequency minutely: every N minutes", "1 to 59"),
        Key("hour", "integer", "1", "frequency hourly: every N hours", "1 to 23"),
        Key("day_time", "string", "", 'frequency daily: "HH:MM"'),
        Key("week", "mapping", "", "frequency weekly: {days: [MON, FRI], time: \"08:00\"}"),
        Key("every", "duration", "", "fire every so long"),
        Key("cron", "string", "", "five cron fields, like \"*/5 * * * *\""),
    ), 'rules:\n  - schedule: {frequency: daily, day_time: "14:30", time_zone: Europe/Berlin}\n'
       "    function: {name: report}\n    publish: {topic: reports/daily}"),
    Section("rules[].schedule.week", "A weekly schedule's days and time.", (
        Key("days", "list", "", "days from MON, TUE, WED, THU, FRI, SAT, SUN", "required, at least one"),
        Key("time", "string", "", 'the time of day, "HH:MM"', "required"),
    )),
    Section("rules[].time_filter", "A time window added to a scheduled rule's event.", (
        Key("start_param", "string", "", "the event key for the window's start, like from", "required"),
        Key("end_param", "string", "", "the event key for the window's end, like to", "required"),
        Key("format", "string", "rfc3339", "how times are written: unix, unix_ms, unix_us, unix_ns, or one of "
            "Go's layouts by name (rfc3339, rfc3339nano, rfc1123, ansic, kitchen…)"),
        Key("interval", "string", "hour", "the window's unit: minute, hour or day"),
        Key("value", "integer", "1", "how many intervals the window spans", "1 to 1000000"),
        Key("forecast", "boolean", "false", "the window lies ahead of the fire instead of behind it"),
    )),
    Section("functions[]", "One function.", (
        Key("name", "string", "", "unique among functions; letters, digits, _ . -", "required, 1 to 128 characters"),
        Key("runtime", "string", "", "python, node, sql or custom", "required"),
        Key("handler", "string", "", "module.attribute (python, node); the SQL statement (sql)",
            "required but for custom"),
        Key("codedir", "path", "", "the function's folder, relative to the config file",
            "required for python and node; an existing directory"),
        Key("env", "mapping", "{}", "environment variables of its instances"),
        Key("instance", "mapping", "", "its pool of instances"),
        Key("command", "list", "", "custom only: the runtime's command line"),
        Key("handshake", "boolean", "false", "custom only: the runtime writes edgefn's handshake line"),
        Key("message", "mapping", "", "Baetyl's place for instance.message (warns)"),
        Key("backoff", "mapping", "", "Baetyl's place for instance.backoff (warns)"),
        Key("timeout", "duration", "", "Baetyl's place for instance.timeout (warns)"),
    ), "functions:\n  - name: sayhi\n    runtime: python\n    handler: index.handler\n"
       "    codedir: functions/sayhi\n    env: {GREETING: hi}"),
    Section("functions[].instance", "A function's pool. For sql only message applies.", (
        Key("min", "integer", "0", "instances kept warm (started before ready)", "0 to 100"),
        Key("max", "integer", "1", "instances at most", "1 to 100, at least min"),
        Key("concurrency", "integer", "1", "calls in flight per instance (async handlers)", "at least 1"),
        Key("idletime", "duration", "10m", "an instance idle this long is stopped (never below min)",
            "at least 100ms"),
        Key("evicttime", "duration", "1m", "how often idle instances are looked for", "at least 100ms"),
        Key("timeout", "duration", "30s", "one call's time limit"),
        Key("starttimeout", "duration", "10s", "how long an instance may take to load its handler"),
        Key("memory", "size", "", "an instance above this resident memory is killed and replaced",
            "at least 1m"),
        Key("message", "mapping", "", "`length.max`: the largest input and result"),
        Key("backoff", "mapping", "", "`max`: the longest pause between failed starts"),
        Key("user", "string", "", "run the instances as this user (a name or a numeric id; the manager "
            "must run as root), with no supplementary groups and HOME set to the user's home"),
        Key("group", "string", "the user's group", "run the instances with this group (a name or a numeric id)"),
    ), "functions:\n  - name: sayhi\n    runtime: python\n    handler: index.handler\n    codedir: sayhi\n"
       "    instance: {min: 1, max: 4, concurrency: 1, idletime: 10m, timeout: 5s, memory: 256m}"),
    Section("functions[].instance.message", "Message limits.", (
        Key("length", "mapping", "", "`max`: the size limit"),
    )),
    Section("functions[].instance.message.length", "The largest input and result.", (
        Key("max", "size", "4m", "a larger input or result is a Runtime.MessageTooLarge envelope",
            "1 to 268435455 bytes"),
    )),
    Section("functions[].instance.backoff", "Failed starts are retried with a doubling pause.", (
        Key("max", "duration", "1m", "the longest pause"),
    )),
    Section("logger", "The log (stderr, and a file with path).", (
        Key("level", "string", "info", "debug, info, warn or error"),
        Key("format", "string", "text", "text, or json for one JSON object per line with fields as keys"),
        Key("path", "path", "", "also log to this file (edgefn does not rotate it)"),
        Key("status", "duration", "5m", "how often each function's status line is logged at info; 0: never"),
    ), "logger: {level: info, format: json, path: /var/log/edgefn/edgefn.log, status: 1m}"),
    Section("shutdown", "Stopping.", (
        Key("timeout", "duration", "30s", "how long work in flight may take to finish after a stop signal"),
    )),
    Section("metrics", "The HTTP endpoint for Prometheus (/metrics) and health checks (/healthz, /readyz).", (
        Key("address", "string", "127.0.0.1:9464", "host:port it listens on (port 0: any free port)"),
    ), "metrics: {address: 127.0.0.1:9464}"),
)

_BY_PATH = {section.path: section for section in SECTIONS}


def keys(path: str) -> tuple[str, ...]:
    """The key names the section at ``path`` accepts (``rules[]``, ``functions[].instance``…)."""
    return tuple(key.name for key in _BY_PATH[path].keys)


def key(path: str, name: str) -> Key:
    """One key's declaration."""
    return next(candidate for candidate in _BY_PATH[path].keys if candidate.name == name)
