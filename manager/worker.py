"""One worker of ``workers: N``: a whole manager, run for its share of the config.

:mod:`edgefn.manager.workers` (the supervisor) starts ``python -m
edgefn.manager.worker`` N times and writes each one the validated config and
its index on stdin. A worker runs the same manager ``edgefn run`` runs, on
:func:`worker_config`, the config rewritten for worker ``index``:

- **client ids**: every connection's clientid (``hub.clientid`` and each
  rule's own) gets ``-<index>``: ``edgefn`` becomes ``edgefn-0``, ``edgefn-1``…
  Each worker has its own MQTT session.
- **subscriptions**: every rule's filter becomes ``$share/<clientid>/<filter>``,
  the group named after the connection's configured clientid, so the broker
  hands each input to one worker. A filter already ``$share/…`` or ``$queue/…``
  stays as written.
- **worker 0 only**: scheduled rules (a schedule fires once, not N times) and
  the gRPC server (one process can bind ``server.address``).
- **metrics**: worker ``index`` listens on ``metrics.address``'s port + index
  (port 0: each on a free port of its own).
- **presence**: each worker's connections publish ``hub.status`` as their own
  clientid, like any connection.

The worker stops as ``edgefn run`` does on SIGTERM (a graceful drain) when its
stdin reaches EOF: the supervisor is gone, even if it was killed with SIGKILL,
and a worker never outlives it.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import sys
import threading
from dataclasses import dataclass, replace
from typing import BinaryIO

from edgefn.manager.config import Config, MetricsConfig, RuleConfig, TopicConfig
from edgefn.manager.topics import shared_filter
from edgefn.runtimes.orphan import wait_for_eof

__all__ = ["WorkerSpec", "shared_filter", "worker_clientid", "worker_config"]

_LENGTH = struct.Struct("!I")


@dataclass(frozen=True)
class WorkerSpec:
    """What the supervisor hands a worker: the whole validated config, its index, ``--log-level``."""

    config: Config
    index: int
    level: str | None = None

    def encode(self) -> bytes:
        """Length-prefixed, for the worker's stdin (it stays open after: EOF means the supervisor is gone)."""
        # A tuple, not the dataclass: the worker runs this module as __main__, where the class differs.
        data = pickle.dumps((self.config, self.index, self.level), protocol=pickle.HIGHEST_PROTOCOL)
        return _LENGTH.pack(len(data)) + data

    @staticmethod
    def read(stream: BinaryIO) -> WorkerSpec:
        """Read one encoded spec from ``stream`` (the supervisor's pipe: trusted, like argv)."""
        (length,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
        config, index, level = pickle.loads(_read_exactly(stream, length))
        if not isinstance(config, Config):
            raise ValueError(f"expected a Config, got {type(config).__name__}")
        return WorkerSpec(config, index, level)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the supervisor closed the pipe before the worker's config was read")
    return data


# -- the config of one worker --------------------------------------------------------------


def worker_clientid(clientid: str, index: int) -> str:
    """The MQTT client id of worker ``index``'s connection for the configured ``clientid``."""
    return f"{clientid}-{index}"


def worker_config(config: Config, index: int) -> Config:
    """``config`` as worker ``index`` of ``config.workers`` runs it (see the module's docstring)."""
    rules = tuple(_worker_rule(rule, config.hub.clientid, index) for rule in config.rules
                  if index == 0 or rule.schedule is None)
    return replace(
        config,
        hub=replace(config.hub, clientid=worker_clientid(config.hub.clientid, index)),
        rules=rules,
        server=config.server if index == 0 else None,
        metrics=_worker_metrics(config.metrics, index),
        workers=1,
        warnings=(),  # the supervisor logged them once
    )


def _worker_rule(rule: RuleConfig, hub_clientid: str, index: int) -> RuleConfig:
    clientid = rule.clientid or hub_clientid
    subscribe = rule.subscribe
    if subscribe is not None:
        subscribe = TopicConfig(shared_filter(subscribe.topic, clientid), subscribe.qos)
    own = worker_clientid(rule.clientid, index) if rule.clientid is not None else None
    return replace(rule, clientid=own, subscribe=subscribe)


def _worker_metrics(metrics: MetricsConfig | None, index: int) -> MetricsConfig | None:
    if metrics is None or metrics.port == 0:
        return metrics
    return replace(metrics, port=metrics.port + index)


# -- the worker process ----------------------------------------------------------------------


def _tag_records(index: int) -> None:
    """Every log record of this process names its worker: ``edgefn.manager[w1]``, and a ``worker`` field."""
    make = logging.getLogRecordFactory()

    def tagged(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.name = f"{record.name}[w{index}]"
        record.worker = index
        return record

    logging.setLogRecordFactory(tagged)


def _watch_supervisor() -> None:
    """EOF on stdin: the supervisor is gone; stop as on SIGTERM (a graceful drain)."""
    wait_for_eof()
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    """Read the spec from stdin, then run the manager on this worker's config until stopped."""
    spec = WorkerSpec.read(sys.stdin.buffer)
    _tag_records(spec.index)
    threading.Thread(target=_watch_supervisor, name="edgefn-supervisor", daemon=True).start()
    from edgefn.manager.serve import serve

    return serve(worker_config(spec.config, spec.index), level=spec.level)


if __name__ == "__main__":
    raise SystemExit(main())
