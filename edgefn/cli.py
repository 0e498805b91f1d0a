"""The ``edgefn`` command: run, dev, check, call, schedule, import-baetyl, runtime (SPEC §2).

Imports are deferred to each command so that ``edgefn runtime …`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgefn import __version__

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["runtime"]:
        return _runtime(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgefn", description="Serverless functions for MQTT at the edge.")
    parser.add_argument("--version", action="version", version=f"edgefn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the function manager")
    run.add_argument("config", help="the YAML config file")
    run.set_defaults(handler=_run)
    dev = commands.add_parser("dev", help="run with hot reload of the config and every function's code")
    dev.add_argument("config", help="the YAML config file")
    dev.set_defaults(handler=_dev)
    check = commands.add_parser("check", help="validate a config and load every handler")
    check.add_argument("config", help="the YAML config file")
    check.set_defaults(handler=_check)
    from edgefn.manager.call import add_parser as add_call

    add_call(commands)
    from edgefn.manager.baetyl import add_parser as add_import_baetyl

    add_import_baetyl(commands)

    from edgefn.manager.preview import add_parser as add_schedule

    add_schedule(commands)
    commands.add_parser("runtime", help="run one runtime instance: edgefn runtime python|node|sql --help")
    return parser


def _load(path: str) -> object | None:
    from edgefn.manager.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"edgefn: {path} has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        for warning in exc.warnings:
            print(f"edgefn: warning: {warning}", file=sys.stderr)
        return None
    for warning in config.warnings:
        print(f"edgefn: warning: {warning}", file=sys.stderr)
    return config


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None or not _startable(args.config, config):
        return EXIT_PROBLEMS
    from edgefn.manager.serve import serve

    return serve(config)  # type: ignore[arg-type]


def _dev(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None or not _startable(args.config, config):
        return EXIT_PROBLEMS
    from edgefn.manager.serve import serve

    return serve(config, dev=True)  # type: ignore[arg-type]


def _startable(path: str, config: object) -> bool:
    """Say, as ``check`` would, what ``run`` would die of at start-up (SQL, TLS files); True if nothing."""
    from edgefn.manager.preflight import sql_problems, tls_problems

    problems = sql_problems(config) + tls_problems(config)  # type: ignore[arg-type]
    for problem in problems:
        print(f"edgefn: {path}: {problem}", file=sys.stderr)
    return not problems


def _check(args: argparse.Namespace) -> int:
    import asyncio

    from edgefn.manager.check import check_functions

    config = _load(args.config)
    if config is None:
        return EXIT_PROBLEMS
    problems: list[object] = [*asyncio.run(check_functions(config))]  # type: ignore[arg-type]
    from edgefn.manager.preflight import tls_problems

    problems += tls_problems(config)  # type: ignore[arg-type]
    if problems:
        print(f"edgefn: {args.config} has {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{args.config}: ok ({len(config.functions)} functions, {len(config.rules)} rules)")  # type: ignore[attr-defined]
    return EXIT_OK


def _runtime(argv: list[str]) -> int:
    from edgefn.manager.launch import LaunchError
    from edgefn.manager.runners import KINDS

    kinds = [name for name, kind in KINDS.items() if kind.serve is not None]
    if not argv or argv[0] not in kinds:
        print(f"usage: edgefn runtime {{{'|'.join(kinds)}}} [--address A] [--name N] [--handler H] "
              "[--codedir D] [--message-max BYTES] [--check]", file=sys.stderr)
        return EXIT_USAGE
    serve = KINDS[argv[0]].serve
    assert serve is not None
    try:
        return serve(argv[1:])
    except LaunchError as exc:
        print(f"edgefn: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
