"""``edgefn init [DIR] [--runtime python|node|sql]``: a new project that runs as written.

It writes ``edgefn.yml`` (one rule on the embedded broker), one function
(``functions/hello``; a SQL function is the statement in the config) and a
README with the three commands to try it. Nothing is ever overwritten: if any
of the files exists, init writes none of them and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "files", "run"]

EXIT_OK = 0
EXIT_EXISTS = 1

RUNTIMES = ("python", "node", "sql")

_PYTHON = '''"""hello: {"name": "edge"} → {"greeting": "hello, edge"}.

The event is the message's JSON (a dict here); what the handler returns is
published as JSON. A plain function of its input: easy to test with
`edgefn call hello --config edgefn.yml --data '{"name": "edge"}'`.
"""


def handler(event, context):
    """Greet the event's name (``world`` when there is none)."""
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    return {"greeting": f"hello, {name}"}
'''

_NODE = ''''use strict';
// hello: {"name": "edge"} → {"greeting": "hello, edge"}.
//
// The event is the message's JSON (an object here); what the handler returns
// (or resolves to) is published as JSON. A plain function of its input: easy to
// test with `edgefn call hello --config edgefn.yml --data '{"name": "edge"}'`.

exports.handler = async (event) => {
  const name = event !== null && typeof event === 'object' && event.name ? event.name : 'world';
  return { greeting: `hello, ${name}` };
};
'''

_SQL = "select concat('hello, ', coalesce(name, 'world')) as greeting"

_CONFIG = '''# An edgefn project: one rule, one function. There is no hub.address, so edgefn
# starts its embedded broker on 127.0.0.1:{port} (development only: set
# hub.address to your MQTT broker for anything else). The full reference of
# every key is docs/config.md in edgefn's repository.
hub:
  embedded: {{port: {port}}}
rules:
  - subscribe: {{topic: hello/in, qos: 1}}
    function: {{name: hello}}
    publish: {{topic: hello/out, qos: 1}}
functions:
  - name: hello
    runtime: {runtime}
{function}'''

_README = '''# {name}

An edgefn project: messages on `hello/in` go to the
`hello` function ({runtime}), its answers to `hello/out`.

1. Run it (edgefn starts its own broker on port {port}):

       edgefn run edgefn.yml

2. In a second terminal, publish a message:

       mosquitto_pub -p {port} -t hello/in -q 1 -m '{{"name": "edge"}}'

3. See the answer (start this before step 2, in a third terminal):

       mosquitto_sub -p {port} -t hello/out -q 1

It prints `{{"greeting":"hello, edge"}}`. Without a broker, call the function
directly: `edgefn call hello --config edgefn.yml --data '{{"name": "edge"}}'`.

`edgefn check edgefn.yml` loads the handler and reports any problem;
`edgefn dev edgefn.yml` reloads on every change to the config or the code.
'''


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``init`` subcommand to ``edgefn``'s subparsers."""
    parser = subparsers.add_parser(
        "init", help="write a new project: a config and one function, ready to run",
        description="Write a new project into DIR (default: the current folder): edgefn.yml with one rule "
        "on the embedded broker, one function answering hello/in on hello/out, and a README with the "
        "commands to try it. Existing files are never overwritten (exit 1).")
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR", help="the project's folder (created if missing)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="python", help="the function's runtime (default python)")
    parser.add_argument("--port", type=int, default=1883, help="the embedded broker's port (default 1883)")
    parser.set_defaults(handler=run)
    return parser


def files(folder: Path, runtime: str, port: int = 1883) -> dict[Path, str]:
    """The project's files (path → text) for ``runtime``."""
    if runtime == "sql":
        function = f'    handler: "{_SQL}"\n'
        code: dict[Path, str] = {}
    else:
        source = "index.py" if runtime == "python" else "index.js"
        function = "    handler: index.handler\n    codedir: functions/hello\n"
        code = {folder / "functions" / "hello" / source: _PYTHON if runtime == "python" else _NODE}
    name = folder.resolve().name or "edgefn project"
    return {
        folder / "edgefn.yml": _CONFIG.format(port=port, runtime=runtime, function=function),
        **code,
        folder / "README.md": _README.format(name=name, runtime=runtime, port=port),
    }


def run(args: argparse.Namespace) -> int:
    """Write the project; refuse (exit 1) if any of its files exists."""
    folder = Path(args.dir)
    planned = files(folder, args.runtime, args.port)
    existing = [path for path in planned if path.exists()]
    if existing:
        names = ", ".join(str(path) for path in existing)
        print(f"edgefn init: {names} already exist(s); nothing was written (choose an empty folder: "
              "edgefn init DIR)", file=sys.stderr)
        return EXIT_EXISTS
    try:
        for path, text in planned.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as file:  # "x": never overwrite, even in a race
                file.write(text)
    except OSError as exc:
        print(f"edgefn init: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_EXISTS
    shown = folder if str(folder) != "." else Path.cwd()
    print(f"wrote a {args.runtime} project in {shown}: edgefn.yml, README.md"
          + ("" if args.runtime == "sql" else ", functions/hello"))
    print(f"next: cd {folder} && edgefn run edgefn.yml   (README.md shows how to publish and see the answer)")
    return EXIT_OK
