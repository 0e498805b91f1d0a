"""``edgefn import-baetyl``: one edgefn config from a Baetyl v1 deployment.

Baetyl v1 spreads a function over three files: application.yml names the
runtime *service* and its image, the function manager's service.yml routes to
the function by name, and the runtime service's own service.yml gives its
handler and codedir (a path inside the container). edgefn keeps all of it in one
file. :func:`import_deployment` follows the function manager's functions into
their runtime services (reading through :mod:`.baetyl_deployment`), maps each
runtime image to an edgefn runtime, and records a :class:`Note` for everything
it drops or changes: nothing is left out silently.

The ``map_*`` functions turn plain mappings into parts of edgefn's config, so
they are tested without files.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .baetyl_deployment import (
    BaetylError, Deployment, Json, Note, Report, Service, as_list, as_mapping, as_number, dump, shown,
)

__all__ = [
    "BaetylError", "Note", "add_parser", "import_deployment", "map_hub", "map_instance", "map_logger",
    "map_rules", "map_server", "run", "runtime_of",
]

CUSTOM_COMMAND = "TODO: the command that serves this function (Baetyl image {image})"

# -- mapping Baetyl's keys to edgefn's ----------------------------------------------------

_RUNTIME_IMAGE = re.compile(r"function-(python|node|sql)(\d*)(?:-(.+))?$")
_RUNTIME_CHANGES = {
    "python": "edgefn's Python runtime (the Python edgefn runs on, 3.11 or later)",
    "node": "edgefn's Node runtime (Node.js 18 or later; callback handlers keep working)",
    "sql": "edgefn's SQL engine, in the manager process",
}


def runtime_of(image_name: str) -> tuple[str, str]:
    """edgefn's runtime for a Baetyl runtime image (``custom`` if unknown), and what that changes."""
    match = _RUNTIME_IMAGE.search(image_name)
    if match is None:
        return "custom", ("not a Baetyl runtime edgefn knows: its functions are written as runtime: custom "
                          "with a placeholder command to fill in (see docs/baetyl.md)")
    kind, version, extra = match.groups()
    change = f"runtime: {kind}, {_RUNTIME_CHANGES[kind]}"
    if kind == "python" and version.startswith("2"):
        change += "; port Python 2.7 code to Python 3"
    if extra:
        change += f"; the image also bundled {extra}: install what the code imports where edgefn runs"
    return kind, change


_HUB_ORDER = ("address", "username", "password", "ca", "cert", "key", "clientid", "keepalive",
              "cleansession", "interval")
_HUB_DROPPED = {
    "timeout": "edgefn retries a connection with backoff up to hub.interval",
    "validatesubs": "edgefn always checks that its subscriptions were granted",
    "buffersize": "edgefn bounds its queues itself",
}
_TLS_FILES = ("ca", "cert", "key")
PathOf = Callable[[str], "str | None"]  # a path in the function manager's container → the config's


def map_hub(hub: Mapping[str, Json], note: Report, services: frozenset[str], path_of: PathOf) -> dict[str, Json]:
    """The function manager's ``hub`` as edgefn's (dropped keys noted; TLS files mapped to the host)."""
    out: dict[str, Json] = {}
    for key in _HUB_ORDER:
        if hub.get(key) is not None:
            out[key] = _host_file(hub[key], f"hub.{key}", note, path_of) if key in _TLS_FILES else hub[key]
    for key in hub:
        if key in _HUB_DROPPED:
            note(f"hub.{key}", f"dropped: {_HUB_DROPPED[key]}")
        elif key not in _HUB_ORDER:
            note(f"hub.{key}", "dropped: not a hub setting of edgefn")
    if out.get("address") is not None:
        _check_hub_address(str(out["address"]), note, services)
    return out


def _check_hub_address(address: str, note: Report, services: frozenset[str]) -> None:
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port or 1883
    except ValueError:
        return  # edgefn check reports a malformed address with its line
    if host in services:
        note("hub.address", f"{address} names the Baetyl service {host!r}, a host name only inside Baetyl's "
             f"containers: change it to your broker's address (tcp://127.0.0.1:{port} if it runs on this "
             "machine), or remove hub.address to use edgefn's embedded broker")


def _host_file(value: Json, key: str, note: Report, path_of: PathOf) -> Json:
    mapped = path_of(str(value))
    if mapped is None:
        note(key, f"{value} is a path in the function manager's container that no mounted volume holds: "
             "carried as written; change it to the file's path on this machine")
        return value
    return mapped


_SERVER_DROPPED = {
    "timeout": "edgefn's server drains calls within shutdown.timeout",
    "message": "edgefn sizes each call by its function's instance.message.length.max",
}


def map_server(server: Mapping[str, Json], note: Report, path_of: PathOf) -> dict[str, Json]:
    """The function manager's gRPC ``server`` as edgefn's."""
    out: dict[str, Json] = {}
    for key in ("address", *_TLS_FILES):
        if server.get(key) is not None:
            out[key] = _host_file(server[key], f"server.{key}", note, path_of) if key != "address" else server[key]
    for key in server:
        if key not in out:
            note(f"server.{key}", f"dropped: {_SERVER_DROPPED.get(key, 'not a server setting of edgefn')}")
    return out


_RULE_ORDER = ("clientid", "subscribe", "function", "publish", "error", "retry")


def map_rules(rules: list[Json], note: Report, carried: set[str]) -> list[dict[str, Json]]:
    """The rules whose function was carried, keys in edgefn's order."""
    out = []
    for index, raw in enumerate(rules):
        rule, key = as_mapping(raw), f"rules[{index}]"
        name = as_mapping(rule.get("function")).get("name")
        if name not in carried:
            note(key, f"dropped: its function {name!r} could not be carried (see the notes about it)")
            continue
        out.append({field: rule[field] for field in _RULE_ORDER if rule.get(field) is not None})
        for field in rule:
            if field not in _RULE_ORDER:
                note(f"{key}.{field}", "dropped: not a rule setting of edgefn")
    return out


_INSTANCE_ORDER = ("min", "max", "concurrency", "idletime", "evicttime", "timeout", "starttimeout",
                   "memory", "message", "backoff")
_FUNCTION_LEVEL = ("message", "backoff", "timeout")  # Baetyl's place for them; edgefn's is instance
_INSTANCE_DROPPED = {
    "cpu": "edgefn does not limit CPU",
    "pids": "edgefn does not limit processes",
}


def map_instance(function: Mapping[str, Json], kind: str, note: Report, key: str,
                 memory: Json = None) -> dict[str, Json]:
    """A manager function's pool settings as edgefn's ``instance``.

    ``message``/``backoff``/``timeout`` move from the function into ``instance``;
    ``memory: {limit}`` becomes ``memory``; ``memory`` is the runtime service's
    own limit, used when the function sets none.
    """
    instance = as_mapping(function.get("instance"))
    out: dict[str, Json] = {}
    source: dict[str, str] = {}
    for field, value in instance.items():
        if field == "memory":
            value = _memory_limit(value, f"{key}.instance.memory", note)
        elif field not in _INSTANCE_ORDER:
            note(f"{key}.instance.{field}", f"dropped: {_INSTANCE_DROPPED.get(field, 'not an instance setting')}")
            continue
        if value is not None:
            out[field], source[field] = value, f"{key}.instance.{field}"
    for field in _FUNCTION_LEVEL:
        if function.get(field) is None:
            continue
        if field in out:
            note(f"{key}.{field}", f"dropped: instance.{field} is set too, and wins")
        else:
            out[field], source[field] = function[field], f"{key}.{field}"
            note(f"{key}.{field}", f"moved to instance.{field}")
    if "memory" not in out and memory is not None:
        out["memory"], source["memory"] = memory, "memory"
    if kind == "sql":
        for field in [field for field in out if field != "message"]:
            if source[field] != "memory":
                note(source[field], "dropped: SQL functions run in the manager, with no instances")
            del out[field]
    return {field: out[field] for field in _INSTANCE_ORDER if field in out}


def _memory_limit(value: Json, key: str, note: Report) -> Json:
    if not isinstance(value, dict):
        return value
    if value.get("swap") is not None:
        note(f"{key}.swap", "dropped: edgefn limits memory, not swap")
    if value.get("limit") is not None:
        note(f"{key}.limit", "carried as instance.memory")
    return value.get("limit")


_LOGGER_DROPPED = {key: "edgefn does not rotate its log file" for key in ("age", "size", "backup")}


def map_logger(logger: Mapping[str, Json], note: Report, path_of: PathOf) -> dict[str, Json]:
    """The function manager's ``logger``; its file path mapped to the host, or dropped."""
    out = {key: logger[key] for key in ("level", "format") if logger.get(key) is not None}
    if logger.get("path"):
        path = path_of(str(logger["path"]))
        if path is None:
            note("logger.path", f"dropped: {logger['path']} is in the function manager's container and no "
                 "volume found on this machine holds it; edgefn logs to stderr")
        else:
            out["path"] = path
    for key in logger:
        if key not in ("level", "format", "path"):
            note(f"logger.{key}", f"dropped: {_LOGGER_DROPPED.get(key, 'not a logger setting of edgefn')}")
    return out


# -- the whole deployment -----------------------------------------------------------------

_MANAGER_KEYS = ("hub", "server", "rules", "functions", "logger")
_RUNTIME_KEYS_DROPPED = {
    "server": "edgefn gives each instance its own address",
    "logger": "a runtime's output goes to edgefn's log",
}
_SERVICE_DROPPED = {
    "ports": "edgefn starts no containers; its hub and server addresses are host addresses",
    "devices": "edgefn starts no containers: functions open the host's devices as edgefn's user",
    "restart": "edgefn replaces crashed instances itself, with backoff",
    "args": "edgefn starts its runtimes with their own arguments",
}


def import_deployment(source: Path, out_folder: Path) -> tuple[dict[str, Json], list[Note]]:
    """Read the Baetyl v1 deployment at ``source`` (a folder or its application.yml).

    Returns edgefn's config (paths relative to ``out_folder``, where it will be
    written) and the notes. Raises BaetylError when application.yml cannot be
    read, has no function manager, or no function could be carried.
    """
    deployment = Deployment(source)
    managers = [service for service in deployment.services if "function-manager" in service.image_name]
    if not managers:
        names = ", ".join(f"{service.name} ({service.image or 'no image'})" for service in deployment.services)
        raise BaetylError(f"{shown(deployment.application)}: no function manager: no service's image is "
                          f"baetyl-function-manager (services: {names or 'none'})")
    found = deployment.config_of(managers[0])
    if found is None:
        raise BaetylError(f"cannot read the function manager's config (service {managers[0].name!r})",
                          deployment.notes)
    importer = _Importer(deployment, managers[0], *found, out_folder.resolve())
    config = importer.config()
    importer.note_services(managers[1:])
    return config, sorted(deployment.notes, key=_reading_order)


def _reading_order(note: Note) -> tuple[str, list[tuple[str, int]]]:
    """File by file, then by key, with list indexes in numeric order (services[2] before services[10])."""
    parts = re.split(r"\[(\d+)\]", note.key)
    return note.file, [(text, int(index or -1)) for text, index in zip(parts[::2], [*parts[1::2], ""])]


class _RuntimeEntry(NamedTuple):
    """A function's entry in its runtime service's service.yml."""

    entry: dict[str, Json]
    note: Report  # about that service.yml
    key: str  # "functions[0]"


class _Importer:
    """The function manager's service.yml, followed into its runtime services."""

    def __init__(self, deployment: Deployment, manager: Service, document: dict[str, Json], file: Path,
                 out_folder: Path) -> None:
        self.deployment, self.manager, self.document = deployment, manager, document
        self.note = deployment.report(file)
        self.out_folder = out_folder
        self.runtimes: dict[str, str] = {}  # runtime service name → its edgefn runtime
        self.read_runtime_files: set[Path] = set()

    def config(self) -> dict[str, Json]:
        document, path_of = self.document, self._manager_path
        functions = [function for index, raw in enumerate(as_list(document.get("functions")))
                     if (function := self._function(index, as_mapping(raw))) is not None]
        if not functions:
            raise BaetylError("no function could be carried (see the notes above)", self.deployment.notes)
        config: dict[str, Json] = {}
        if isinstance(hub := document.get("hub"), dict):
            services = frozenset(service.name for service in self.deployment.services)
            config["hub"] = map_hub(hub, self.note, services, path_of)
        else:
            self.note("hub", "missing: edgefn starts its embedded broker")
        if isinstance(server := document.get("server"), dict):
            config["server"] = map_server(server, self.note, path_of)
        carried = {str(function["name"]) for function in functions}
        config["rules"] = map_rules(as_list(document.get("rules")), self.note, carried)
        config["functions"] = functions
        if isinstance(logger := document.get("logger"), dict) and (mapped := map_logger(logger, self.note, path_of)):
            config["logger"] = mapped
        for key in document:
            if key not in _MANAGER_KEYS:
                self.note(key, "dropped: not an edgefn setting")
        return config

    def _manager_path(self, inside: str) -> str | None:
        host = self.deployment.host_path(self.manager, inside)
        return None if host is None else self._relative(host)

    def _relative(self, host: Path) -> str:
        return os.path.relpath(host, self.out_folder)

    def _function(self, index: int, entry: dict[str, Json]) -> dict[str, Json] | None:
        """The manager's function ``index`` with its runtime service's part, or None (noted)."""
        key, name = f"functions[{index}]", entry.get("name")
        service = self.deployment.service(str(entry.get("service")))
        if name is None or service is None:
            what = "no name" if name is None else f"no service named {entry.get('service')!r} in application.yml"
            self.note(key, f"dropped: {what}")
            return None
        kind = self._runtime(service)
        runtime = self._runtime_entry(service, str(name))
        codedir = self._codedir(service, runtime) if runtime is not None and kind != "sql" else None
        if runtime is None or (codedir is None and kind != "sql"):
            self.note(key, f"dropped: function {name!r} could not be found on this machine (see the notes above)")
            return None
        out: dict[str, Json] = {"name": name, "runtime": kind, "handler": runtime.entry["handler"]}
        if codedir is not None:
            out["codedir"] = codedir
        if kind == "custom":
            out["command"] = [CUSTOM_COMMAND.format(image=service.image)]
            self.note(key, f"function {name!r} runs on image {service.image}: written as runtime: custom; "
                      "replace its command with the program that serves it (see docs/baetyl.md)")
        out.update(self._settings(service, entry, kind, key))
        return out

    def _settings(self, service: Service, entry: dict[str, Json], kind: str, key: str) -> dict[str, Json]:
        """``env`` from the runtime service, ``instance`` from the manager's function entry."""
        out: dict[str, Json] = {}
        if (env := as_mapping(service.raw.get("env"))) and kind != "sql":
            out["env"] = env
        limit = as_mapping(as_mapping(service.raw.get("resources")).get("memory")).get("limit")
        if instance := map_instance(entry, kind, self.note, key, limit):
            out["instance"] = instance
        for field in entry:
            if field not in ("name", "service", "instance", *_FUNCTION_LEVEL):
                self.note(f"{key}.{field}", "dropped: not a function setting of edgefn")
        return out

    def _runtime(self, service: Service) -> str:
        """The service's edgefn runtime; its image and service keys are noted the first time."""
        if service.name not in self.runtimes:
            kind, change = runtime_of(service.image_name)
            self.runtimes[service.name] = kind
            note = self.deployment.report(self.deployment.application)
            note(f"{service.key}.image", f"{service.image or 'none'}: not carried; {change}")
            if as_number(service.raw.get("replica")) > 0:
                note(f"{service.key}.replica", "not carried: edgefn starts a function's instances itself "
                     "(instance.min keeps some warm)")
            _note_service_keys(service, note, runtime=True)
        return self.runtimes[service.name]

    def _runtime_entry(self, service: Service, name: str) -> _RuntimeEntry | None:
        """The runtime service's entry for function ``name`` (with a handler), or None (noted)."""
        found = self.deployment.config_of(service)
        if found is None:
            return None
        document, file = found
        note = self.deployment.report(file)
        if file not in self.read_runtime_files:
            self.read_runtime_files.add(file)
            for key in document:
                if key != "functions":
                    note(key, f"dropped: {_RUNTIME_KEYS_DROPPED.get(key, 'not an edgefn setting')}")
        for index, raw in enumerate(as_list(document.get("functions"))):
            entry, key = as_mapping(raw), f"functions[{index}]"
            if str(entry.get("name")) != name:
                continue
            for field in entry:
                if field not in ("name", "handler", "codedir"):
                    note(f"{key}.{field}", "dropped: not a function setting of edgefn")
            if entry.get("handler") is None:
                note(f"{key}.handler", "missing: Baetyl's runtimes need it too")
                return None
            return _RuntimeEntry(entry, note, key)
        note("functions", f"no function named {name!r}, which the function manager runs on service "
             f"{service.name!r}")
        return None

    def _codedir(self, service: Service, runtime: _RuntimeEntry) -> str | None:
        """The function's code folder on this machine, relative to the output, or None (noted)."""
        inside = runtime.entry.get("codedir")
        if inside is None:
            runtime.note(f"{runtime.key}.codedir", "missing: Baetyl's runtimes need it too")
            return None
        host = self.deployment.host_path(service, str(inside))
        if host is None:
            runtime.note(f"{runtime.key}.codedir", f"{inside} is in service {service.name!r}'s container and no "
                         "volume found on this machine holds it")
            return None
        return self._relative(host)

    def note_services(self, extra_managers: list[Service]) -> None:
        """Note every service that was not carried: the hub, other services, the manager's own keys."""
        note = self.deployment.report(self.deployment.application)
        note(f"{self.manager.key}.image", f"{self.manager.image}: not carried: edgefn is the function manager")
        if as_number(self.manager.raw.get("replica"), 1) > 1:
            note(f"{self.manager.key}.replica", "not carried: run one edgefn per config")
        _note_service_keys(self.manager, note, runtime=False)
        for service in self.deployment.services:
            if service is self.manager or service.name in self.runtimes:
                continue
            note(service.key, f"service {service.name!r} ({service.image_name or 'no image'}): not carried: "
                 + _why_not_carried(service, service in extra_managers))


def _why_not_carried(service: Service, extra_manager: bool) -> str:
    if extra_manager:
        return "only the first function manager is imported; import the others into configs of their own"
    if service.image_name.endswith("-hub") or service.image_name == "hub":
        ports = ", ".join(str(port) for port in as_list(service.raw.get("ports")))
        published = f" (it published {ports})" if ports else ""
        return (f"edgefn connects to an MQTT broker at hub.address (mosquitto, EMQX) or starts its embedded "
                f"one{published}: set that broker's users, ports and topic permissions from this service's "
                "service.yml")
    if "function-" in service.image_name:
        return "no function of the function manager runs on it"
    return "edgefn imports the function manager and its runtime services only"


def _note_service_keys(service: Service, note: Report, runtime: bool) -> None:
    for key, why in _SERVICE_DROPPED.items():
        if key == "args" and [str(arg) for arg in as_list(service.raw.get(key))][:1] == ["-c"]:
            continue  # only names its config file, which was followed
        if service.raw.get(key):
            note(f"{service.key}.{key}", f"not carried: {why}")
    resources = as_mapping(service.raw.get("resources"))
    for key, value in resources.items():
        if runtime and key == "memory" and as_mapping(value).get("limit") is not None:
            note(f"{service.key}.resources.memory.limit", "carried as instance.memory of its functions "
                 "that set none")
            continue
        note(f"{service.key}.resources.{key}", "not carried: edgefn limits only an instance's memory "
             "(instance.memory)")


# -- the command --------------------------------------------------------------------------

EXIT_OK, EXIT_FAILED = 0, 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``import-baetyl`` to ``edgefn``'s subparsers; its handler is :func:`run`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "import-baetyl",
        help="write an edgefn config from a Baetyl v1 deployment",
        description="Read a Baetyl v1 deployment (application.yml, the function manager's service.yml and "
        "each runtime service's service.yml) and write one edgefn config. Everything not carried over, or "
        "carried over changed, is reported on stderr, one line each, naming the Baetyl file and key. "
        "Exit 0 when the config was written, 1 when the deployment cannot be read or has no function manager.",
    )
    parser.add_argument("source", metavar="APP_DIR_OR_FILE",
                        help="the folder holding application.yml (like var/db/baetyl), or application.yml itself")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the config to FILE (default: stdout; paths are then relative to here)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``edgefn import-baetyl`` with parsed ``args``; return the exit status."""
    output = Path(args.output) if args.output else None
    out_folder = output.absolute().parent if output is not None else Path.cwd()
    try:
        config, notes = import_deployment(Path(args.source), out_folder)
    except BaetylError as exc:
        for note in exc.notes:
            print(note, file=sys.stderr)
        print(f"edgefn import-baetyl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for note in notes:
        print(note, file=sys.stderr)
    text = f"# Imported from the Baetyl v1 deployment {args.source} by edgefn import-baetyl.\n" + dump(config)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"edgefn import-baetyl: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
    where = "stdout" if output is None else str(output)
    print(f"edgefn import-baetyl: wrote {where}: {len(config['functions'])} functions, {len(config['rules'])} "
          f"rules; {len(notes)} notes", file=sys.stderr)
    return EXIT_OK
