"""The manager's counters as Prometheus metrics, read at scrape time.

A custom collector on a private registry turns :class:`~edgefn.manager.metrics.Metrics`,
the pools' gauges, the routers' and the hubs' counters into metric families
when ``/metrics`` is scraped: the hot path keeps counting plain integers and
pays nothing for the exposition. prometheus-client writes the text format.
``docs/metrics.md`` lists every metric; a test checks it names each one here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from edgefn.manager.metrics import DURATION_BUCKETS, FunctionStats, Metrics, RuleStats

__all__ = ["CONTENT_TYPE", "NAMES", "ManagerCollector", "Observed", "exposition", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Connection(Protocol):
    """What the collector reads of one hub connection and its router."""

    @property
    def connected(self) -> bool: ...
    reconnects: int


class Routing(Protocol):
    unmatched: int
    publish_failures: int


class Observed(Protocol):
    """What the collector reads of the manager (a Protocol: tests can pass a stand-in)."""

    metrics: Metrics

    @property
    def connections(self) -> Mapping[str, tuple[Connection, Routing]]: ...

    @property
    def ready(self) -> bool: ...


# Every family this module exposes: name → (type, labels, meaning). docs/metrics.md lists the same.
NAMES: dict[str, tuple[str, str, str]] = {
    "edgefn_ready": ("gauge", "", "1 when ready (as /readyz answers 200), else 0"),
    "edgefn_function_calls_total": ("counter", "function, outcome, error_type",
                                    "finished calls; outcome ok or error, error_type the envelope's errorType "
                                    "(empty when ok)"),
    "edgefn_function_call_duration_seconds": ("histogram", "function",
                                              "how long calls took, waiting for an instance included"),
    "edgefn_function_in_flight": ("gauge", "function", "instances running a call now"),
    "edgefn_function_waiting": ("gauge", "function", "calls waiting for a free instance"),
    "edgefn_function_instances": ("gauge", "function, state", "instances by state: starting, busy or idle"),
    "edgefn_function_cold_starts_total": ("counter", "function", "instances started for a waiting call"),
    "edgefn_function_start_failures_total": ("counter", "function", "starts that failed (load error, starttimeout)"),
    "edgefn_function_crashes_total": ("counter", "function", "instances that died on their own"),
    "edgefn_function_oom_kills_total": ("counter", "function", "instances killed above instance.memory"),
    "edgefn_function_qos0_shed_total": ("counter", "function",
                                        "QoS 0 inputs dropped because the function's queue was full"),
    "edgefn_function_timeouts_total": ("counter", "function", "calls that ran past instance.timeout"),
    "edgefn_rule_inputs_total": ("counter", "rule, function, clientid", "messages (or fires) the rule took"),
    "edgefn_rule_outputs_total": ("counter", "rule, function, clientid",
                                  "messages published: results, and outputs a call published on its way"),
    "edgefn_rule_envelopes_total": ("counter", "rule, function, clientid", "error envelopes published or dropped"),
    "edgefn_schedule_fires_total": ("counter", "rule, function", "fires of a scheduled rule"),
    "edgefn_schedule_late_fires_total": ("counter", "rule, function",
                                         "fires that woke more than 1s after their nominal time"),
    "edgefn_connection_up": ("gauge", "clientid", "1 while the connection to the hub is up"),
    "edgefn_connection_reconnects_total": ("counter", "clientid", "connections that came up after the first"),
    "edgefn_connection_publish_failures_total": ("counter", "clientid",
                                                 "publishes the hub did not take (the input is redelivered)"),
    "edgefn_connection_unmatched_total": ("counter", "clientid",
                                          "deliveries no rule wanted (acknowledged and dropped)"),
}


def _family(name: str) -> Any:  # a counter, gauge or histogram family: each has its own add_metric
    kind, labels, meaning = NAMES[name]
    label_names = [label.strip() for label in labels.split(",")] if labels else []
    base = name.removesuffix("_total")
    if kind == "counter":
        return CounterMetricFamily(base, meaning, labels=label_names)
    if kind == "histogram":
        return HistogramMetricFamily(name, meaning, labels=label_names)
    return GaugeMetricFamily(name, meaning, labels=label_names)


class ManagerCollector(Collector):
    """Reads the manager's counters when scraped."""

    def __init__(self, manager: Observed) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Any] = {name: _family(name) for name in NAMES}
        families["edgefn_ready"].add_metric([], 1 if self._manager.ready else 0)
        for stats in list(self._manager.metrics.functions.values()):
            _function(families, stats)
        for rule in list(self._manager.metrics.rules.values()):
            _rule(families, rule)
        for clientid, (hub, router) in list(self._manager.connections.items()):
            families["edgefn_connection_up"].add_metric([clientid], 1 if hub.connected else 0)
            families["edgefn_connection_reconnects_total"].add_metric([clientid], hub.reconnects)
            families["edgefn_connection_publish_failures_total"].add_metric([clientid], router.publish_failures)
            families["edgefn_connection_unmatched_total"].add_metric([clientid], router.unmatched)
        yield from families.values()


def _function(families: dict[str, Any], stats: FunctionStats) -> None:
    name = stats.name
    calls = families["edgefn_function_calls_total"]
    calls.add_metric([name, "ok", ""], stats.calls - stats.errors)
    for error_type, count in list(stats.failures.items()):
        calls.add_metric([name, "error", error_type], count)
    cumulative, buckets = 0, []
    for bound, count in zip([*map(str, DURATION_BUCKETS), "+Inf"], list(stats.buckets), strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    families["edgefn_function_call_duration_seconds"].add_metric([name], buckets, stats.seconds)  # type: ignore[attr-defined]
    live, busy, waiting = stats.gauges()
    families["edgefn_function_in_flight"].add_metric([name], busy)
    families["edgefn_function_waiting"].add_metric([name], waiting)
    families["edgefn_function_instances"].add_metric([name, "busy"], busy)
    families["edgefn_function_instances"].add_metric([name, "idle"], live - busy)
    families["edgefn_function_instances"].add_metric([name, "starting"], stats.starting())
    for family, value in (("cold_starts", stats.cold_starts), ("start_failures", stats.start_failures),
                          ("crashes", stats.crashes), ("oom_kills", stats.oom_kills),
                          ("qos0_shed", stats.dropped), ("timeouts", stats.timeouts)):
        families[f"edgefn_function_{family}_total"].add_metric([name], value)
    for rule, count in list(stats.fires.items()):
        families["edgefn_schedule_fires_total"].add_metric([str(rule), name], count)
        families["edgefn_schedule_late_fires_total"].add_metric([str(rule), name], stats.late_fires.get(rule, 0))


def _rule(families: dict[str, Any], rule: RuleStats) -> None:
    labels = [str(rule.index), rule.function, rule.clientid]
    families["edgefn_rule_inputs_total"].add_metric(labels, rule.inputs)
    families["edgefn_rule_outputs_total"].add_metric(labels, rule.outputs)
    families["edgefn_rule_envelopes_total"].add_metric(labels, rule.envelopes)


def exposition(manager: Observed) -> CollectorRegistry:
    """A private registry holding only the manager's collector (no process or GC metrics of the library's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ManagerCollector(manager))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(registry)
