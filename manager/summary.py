"""The start-up summary: what this manager runs, in a few log lines an operator can read.

At info, once the manager is ready: the hub (and whether edgefn runs the
broker), each rule as ``topic → function → topic`` (a scheduled rule shows
its schedule), each function with its runtime and warm instances. One record
per line, each with its fields (``rule``, ``function``, ``clientid``) for JSON logs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from edgefn.manager.config import Config, RuleConfig

__all__ = ["log_summary", "rule_line"]

log = logging.getLogger("edgefn.manager")


def log_summary(config: Config, runners: Mapping[str, object]) -> None:
    """Log the hub, every rule and every function (``runners`` give the warm counts)."""
    hub = config.hub
    if hub.embedded:
        log.info("hub: embedded broker on tcp://127.0.0.1:%d (development only)", hub.port)
    else:
        log.info("hub: %s", hub.address, extra={"clientid": hub.clientid})
    for rule in config.rules:
        clientid = rule.clientid or hub.clientid
        log.info("rules[%d]: %s (clientid %s)", rule.index, rule_line(rule), clientid,
                 extra={"rule": rule.index, "function": rule.function, "clientid": clientid})
    for function in config.functions:
        log.info("functions: %s (%s): %s", function.name, function.runtime, _instances(function.name, runners),
                 extra={"function": function.name, "runtime": function.runtime})


def rule_line(rule: RuleConfig) -> str:
    """``in → function → out`` for one rule (``error → out`` when errors go elsewhere)."""
    source = f"{rule.subscribe.topic} (qos {rule.subscribe.qos})" if rule.subscribe else _schedule(rule)
    line = f"{source} → {rule.function} → {rule.publish.topic} (qos {rule.publish.qos})"
    if rule.error is not None:
        line += f", errors → {rule.error.topic}"
    return line


def _schedule(rule: RuleConfig) -> str:
    schedule = rule.schedule
    describe = getattr(schedule, "describe", None)
    return f"schedule {describe() if callable(describe) else schedule}"


def _instances(name: str, runners: Mapping[str, object]) -> str:
    runner = runners.get(name)
    instances = getattr(runner, "instances", None)
    limits = getattr(getattr(runner, "function", None), "instance", None)
    if instances is None or limits is None:
        return "runs in the manager"
    return f"{len(instances)} warm (min {limits.min}, max {limits.max})"
