"""The ``edgefn`` command: run, dev, check, call, init, schedule, import-baetyl, runtime.

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
    parser = _parser(full=argv[:1] not in (["run"], ["dev"], ["check"]))
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(args.handler(args))


def _parser(full: bool = True) -> argparse.ArgumentParser:
    """The command line; ``full=False`` leaves out the commands whose modules are heavy to import
    (``run``, ``dev`` and ``check`` start without them)."""
    parser = argparse.ArgumentParser(prog="edgefn", description="Serverless functions for MQTT at the edge.")
    parser.add_argument("--version", action="version", version=f"edgefn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run the function manager",
        description="Run the function manager for a config until SIGINT or SIGTERM, then drain work in flight "
        "and exit 0. Refuses to start (exit 1) on what 'edgefn check' reports. Logs 'edgefn ready' once every "
        "rule is subscribed and every min instance is warm.")
    _config_argument(run)
    run.set_defaults(handler=_run)
    dev = commands.add_parser(
        "dev", help="run with hot reload of the config and every function's code",
        description="Like 'edgefn run', and reload on every change to the config file or a function's code. "
        "A change that does not load is reported and the last good version keeps running.")
    _config_argument(dev)
    dev.set_defaults(handler=_dev)
    check = commands.add_parser(
        "check", help="validate a config and load every handler",
        description="Validate a config, load every function's handler and compile every SQL statement, as "
        "'edgefn run' would. Exit 0, or 1 with every problem listed.")
    check.add_argument("config", help="the YAML config file")
    check.set_defaults(handler=_check)
    if full:
        _add_tools(commands)
    commands.add_parser(
        "runtime", help="run one runtime instance: edgefn runtime python|node|sql --help",
        description="Run one runtime instance serving baetyl.Function on an address (what the manager spawns; "
        "usable alone).", usage="edgefn runtime {python|node|sql} [options]")
    return parser


def _add_tools(commands: object) -> None:
    """The commands each defined in their own module: call, init, import-baetyl, schedule."""
    from edgefn.manager.call import add_parser as add_call

    add_call(commands)
    from edgefn.manager.init import add_parser as add_init

    add_init(commands)
    from edgefn.manager.baetyl import add_parser as add_import_baetyl

    add_import_baetyl(commands)

    from edgefn.manager.preview import add_parser as add_schedule

    add_schedule(commands)


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the YAML config file")
    parser.add_argument("--log-level", choices=("debug", "info", "warn", "error"),
                        help="override logger.level for this run")


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
    import gc

    from edgefn.manager import standby

    # A Python runtime imports its serving stack on the other core while this
    # process loads the config; the first Python instance takes it over.
    standby.start()
    # Start-up allocates what lives as long as the manager: collecting meanwhile is
    # wasted work on the way to the first answer (serve freezes it all once started).
    gc.disable()
    try:
        config = _load(args.config)
        if config is None:
            return EXIT_PROBLEMS
        if config.workers > 1 or not any(function.runtime == "python" for function in config.functions):  # type: ignore[attr-defined]
            standby.release()  # nothing here would take it (workers start their own instances)
        from edgefn.manager.preflight import StartRefused
        from edgefn.manager.serve import serve

        # run refuses what check would refuse: a handler that does not load never starts a service.
        # Its min instances start first, and their start is the check (preflight.py).
        try:
            return serve(config, level=args.log_level)  # type: ignore[arg-type]
        except StartRefused as refused:
            _report(args.config, refused.problems)
            return EXIT_PROBLEMS
    finally:
        standby.release()


def _dev(args: argparse.Namespace) -> int:
    config = _load(args.config)
    # dev starts with a broken handler and waits for the fix (it reloads on every save).
    if config is None or not _startable(args.config, config, handlers=False):
        return EXIT_PROBLEMS
    from edgefn.manager.serve import serve

    return serve(config, dev=True, level=args.log_level)  # type: ignore[arg-type]


def _problems(config: object, handlers: bool) -> list[object]:
    """What ``check`` reports: handlers that do not load (or SQL that does not compile), TLS files."""
    from edgefn.manager.preflight import sql_problems, tls_problems

    problems: list[object]
    if handlers:
        import asyncio

        from edgefn.manager.check import check_functions

        problems = [*asyncio.run(check_functions(config))]  # type: ignore[arg-type]
    else:
        problems = [*sql_problems(config)]  # type: ignore[arg-type]
    return problems + tls_problems(config)  # type: ignore[arg-type]


def _startable(path: str, config: object, *, handlers: bool) -> bool:
    """Say, as ``check`` would, what ``run`` would fail on at start-up; True if nothing."""
    problems = _problems(config, handlers)
    _report(path, problems)
    return not problems


def _report(path: str, problems: list[object]) -> None:
    if problems:
        print(f"edgefn: {path} has {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_PROBLEMS
    problems = _problems(config, handlers=True)
    if problems:
        _report(args.config, problems)
        return EXIT_PROBLEMS
    print(f"{args.config}: ok ({len(config.functions)} functions, {len(config.rules)} rules)")  # type: ignore[attr-defined]
    return EXIT_OK


_RUNTIME_HELP = """usage: edgefn runtime {kinds} [options]

Run one runtime instance: it loads one handler and serves baetyl.Function on an
address. The manager spawns these; run one alone to test a function with
'edgefn call --address'.

runtimes:
{rows}

Each runtime's options: edgefn runtime KIND --help
"""


_RUNTIME_SUMMARIES = {
    "python": "a Python handler (module.attribute) from a codedir",
    "node": "a Node.js handler (module.export) from a codedir; needs Node.js >= 18",
    "sql": "a SQL statement over the message (what runs in the manager for runtime: sql)",
}


def _runtime(argv: list[str]) -> int:
    import difflib

    from edgefn.manager.launch import LaunchError
    from edgefn.manager.runners import KINDS

    kinds = [name for name, kind in KINDS.items() if kind.serve is not None]
    if not argv or argv[0] in ("-h", "--help"):
        rows = "\n".join(f"  {name:8} {_RUNTIME_SUMMARIES.get(name, '')}" for name in kinds)
        print(_RUNTIME_HELP.format(kinds="{" + "|".join(kinds) + "}", rows=rows),
              file=sys.stdout if argv else sys.stderr, end="")
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] not in kinds:
        close = difflib.get_close_matches(argv[0], kinds, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        print(f"edgefn runtime: unknown runtime {argv[0]!r}; {hint}expected one of {', '.join(kinds)} "
              "(edgefn runtime --help)", file=sys.stderr)
        return EXIT_USAGE
    serve = KINDS[argv[0]].serve
    assert serve is not None
    try:
        return serve(argv[1:])
    except LaunchError as exc:
        print(f"edgefn: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
