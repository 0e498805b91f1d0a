"""Reading the ``functions`` list: each function's runtime kind, handler, code,
command line, environment and instance pool (SPEC §3, §8).

What a runtime kind accepts comes from the runner registry (``runners.KINDS``):
this module reads; it never switches on a kind's name. Baetyl's spellings load
with a warning naming edgefn's: runtime names like ``python36`` or ``node85``,
and ``message``/``backoff``/``timeout`` on the function instead of under
``instance``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from edgefn.wire.limits import DEFAULT_MESSAGE_MAX, MQTT_MESSAGE_MAX

from .config import FrozenEnv, FunctionConfig, InstanceConfig
from .config_keys import keys
from .identity import Identity, identity_of, resolve_group, resolve_user
from .runners import KINDS, RuntimeKind, alias
from .yamldoc import Section, Value, is_null, items_of, read_key

__all__ = ["read_functions"]

# Keys Baetyl's function manager puts on the function, edgefn under instance.
_FUNCTION_LEVEL = ("message", "backoff", "timeout")

_FUNCTION_KEYS = keys("functions[]")
_FUNCTION_BAETYL = {"service": "edgefn starts instances from runtime: (python, node, sql or custom); "
                               "'edgefn import-baetyl' converts a Baetyl deployment"}
_INSTANCE_KEYS = keys("functions[].instance")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# idletime and evicttime below this would spin the eviction loop (evicttime: 1ns took a core).
_IDLE_MIN = 0.1
_MEMORY_MIN = 1024 * 1024


def read_functions(value: Value | None) -> tuple[tuple[FunctionConfig, ...], dict[str, Value]]:
    """The valid functions, and every name declared (valid or not) for the rules' check."""
    declared: dict[str, Value] = {}
    items = items_of(value)
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
    kind = _kind(function)
    handler = _handler(function, kind)
    codedir = _codedir(function, kind)
    command, handshake = _command(function, kind)
    env = _env(function.get("env"), kind)
    instance = _instance(_instance_section(function), kind)
    if name is None or kind is None or handler is None or (codedir is None and kind.codedir != "none"):
        return None
    if kind.command and not command:
        return None
    return FunctionConfig(name, kind.name, handler, codedir, env, instance, index, command, handshake)


def _kind(function: Section) -> RuntimeKind | None:
    value = function.require("runtime", "one of " + ", ".join(KINDS))
    text = value.text("one of " + ", ".join(KINDS)) if value is not None else None
    if value is None or text is None:
        return None
    name = text.strip().lower()
    if name in KINDS:
        return KINDS[name]
    if (known := alias(name)) is not None:
        value.warn(f"Baetyl's runtime name {text!r}; edgefn calls it {known!r} (write runtime: {known})")
        return KINDS[known]
    close = difflib.get_close_matches(name, list(KINDS), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    value.error(f"{hint}expected one of {', '.join(KINDS)}, got {text!r}")
    return None


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


def _handler(function: Section, kind: RuntimeKind | None) -> str | None:
    what = kind.handler_hint if kind is not None else "module.attribute, like index.handler"
    value = function.require("handler", what) if kind is None or kind.handler_required else function.get("handler")
    if value is None:
        return None if kind is None or kind.handler_required else ""
    handler = value.string()
    if handler is None or kind is None:
        return None
    if (problem := kind.check_handler(handler)) is not None:
        value.error(problem)
        return None
    return handler


def _codedir(function: Section, kind: RuntimeKind | None) -> Path | None:
    if kind is not None and kind.codedir == "none":
        if (value := function.get("codedir")) is not None:
            value.warn(f"{kind.name} functions have no code folder; ignored")
        return None
    if kind is None or kind.codedir == "optional":  # unknown runtime (already reported): check it only if given
        value = function.get("codedir")
        if value is None:
            return function.value.doc.folder if kind is not None else None
    else:
        value = function.require("codedir", "the function's folder, relative to this file")
    return value.path_value("dir") if value is not None else None


def _command(function: Section, kind: RuntimeKind | None) -> tuple[tuple[str, ...], bool]:
    """``command`` and ``handshake``: for runtimes that take a command line (custom), refused elsewhere."""
    value, handshake_value = function.get("command"), function.get("handshake")
    if kind is not None and not kind.command:
        for other in (value, handshake_value):
            if other is not None:
                other.error(f"only runtime: custom takes a command line; {kind.name} functions run the built-in runtime")
        return (), False
    handshake = (handshake_value.boolean() if handshake_value is not None else None) or False
    if kind is None:
        return (), handshake
    value = function.require("command", "the runtime's command line, like [./my-runtime, --flag]")
    if value is None:
        return (), handshake
    words = [word for item in value.items() if (word := item.string()) is not None]
    if isinstance(value.node, yaml.SequenceNode) and not value.node.value:
        value.error("expected the runtime's command line, like [./my-runtime, --flag]; got an empty list")
    if not words:
        return (), handshake
    if "/" in words[0]:  # a path, relative to the config file like every path in it
        # Not resolved: a venv's python is a symlink that only works under its own name.
        words[0] = os.path.normpath(value.doc.folder / Path(words[0]).expanduser())
    return tuple(words), handshake


def _env(value: Value | None, kind: RuntimeKind | None) -> FrozenEnv:
    env = value.section((), example="{GREETING: hi}") if value is not None else None
    if env is None or value is None:
        return FrozenEnv()
    if kind is not None and kind.in_process and env.entries:
        value.warn(f"{kind.name} functions run in the manager and see no env; ignored")
    result: dict[str, str] = {}
    for name, entry in env.entries.items():
        if not _ENV_NAME.fullmatch(name):
            entry.error("expected an environment variable name (letters, digits and '_')")
        elif name.upper().startswith("EDGEFN_"):
            entry.error("names starting with EDGEFN_ are reserved for edgefn")
        elif (text := "" if is_null(entry.node) else entry.text()) is not None:
            result[name] = text
    return FrozenEnv(result)


def _instance_section(function: Section) -> Section | None:
    """``instance``, with Baetyl's function-level ``message``/``backoff``/``timeout`` moved into it."""
    instance = function.section("instance", _INSTANCE_KEYS, example="{max: 2}")
    for key in _FUNCTION_LEVEL:
        value = function.get(key)
        if value is None:
            continue
        if instance is not None and key in instance.entries:
            value.error(f"set both here and as instance.{key}; keep instance.{key}")
            continue
        value.warn(f"Baetyl's place for it; edgefn reads it as instance.{key} (write it there)")
        if instance is None:
            instance = Section.empty(function.value, "instance")
        instance.entries[key] = value
    return instance


def _instance(instance: Section | None, kind: RuntimeKind | None) -> InstanceConfig:
    if instance is None:
        return InstanceConfig()
    message = instance.section("message", keys("functions[].instance.message"), example="{length: {max: 4m}}")
    length = message.section("length", keys("functions[].instance.message.length"), example="{max: 4m}") if message else None
    message_max = read_key(length, "max", lambda value: value.size(1, MQTT_MESSAGE_MAX), DEFAULT_MESSAGE_MAX)
    if kind is not None and kind.in_process:
        for key, value in instance.entries.items():
            if key != "message":
                value.warn(f"does not apply to {kind.name} functions (they run in the manager); ignored")
        return InstanceConfig(message_max=message_max)
    backoff = instance.section("backoff", keys("functions[].instance.backoff"), example="{max: 1m}")
    low = read_key(instance, "min", lambda value: value.integer(0, 100), 0)
    high = read_key(instance, "max", lambda value: value.integer(1, 100), 1)
    if low > high:
        instance.entries["min"].error(f"must not be more than instance.max ({high}), got {low}")
    return InstanceConfig(
        min=low,
        max=high,
        concurrency=read_key(instance, "concurrency", lambda value: value.integer(1), 1),
        idletime=read_key(instance, "idletime", _at_least(_IDLE_MIN), 600.0),
        evicttime=read_key(instance, "evicttime", _at_least(_IDLE_MIN), 60.0),
        timeout=read_key(instance, "timeout", Value.duration, 30.0),
        starttimeout=read_key(instance, "starttimeout", Value.duration, 10.0),
        memory=read_key(instance, "memory", _memory, None),
        message_max=message_max,
        backoff_max=read_key(backoff, "max", Value.duration, 60.0),
        identity=_identity(instance),
    )


def _identity(instance: Section) -> Identity | None:
    """``user`` and ``group``: names or numeric ids that must exist on this machine."""
    entry, gid, names, wrong = None, None, [], False
    if (user := instance.get("user")) is not None and (text := user.string()) is not None:
        entry, problem = resolve_user(text)
        names.append(text)
        if problem is not None:
            user.error(problem)
            wrong = True
    if (group := instance.get("group")) is not None and (text := group.string()) is not None:
        gid, problem = resolve_group(text)
        names.append(text)
        if problem is not None:
            group.error(problem)
            wrong = True
    if wrong or (entry is None and gid is None):
        return None
    return identity_of(entry, gid, ":".join(names))


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
