"""The operating-system side of a runtime instance: its process, its output, its exit.

A :class:`RuntimeProcess` spawns the runtime's command line in a session of
its own (a terminal's Ctrl-C reaches only the manager), reads the optional
handshake line, relays stdout and stderr into the log, and reports the exit the
moment the child watcher reaps the process (the subprocess protocol's
``process_exited``), not when its pipes close: a grandchild holding stderr open
must not hide a crash. It knows nothing about gRPC (see ``client.py``).

The handshake is the one JSON line edgefn's built-in runtimes write on stdout
once they serve (docs/runtimes.md): :func:`parse_handshake` is its one reader,
used here and by ``edgefn check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from edgefn.manager import standby
from edgefn.manager.identity import Identity
from edgefn.manager.logs import OutputRelay
from edgefn.runtimes import faults
from edgefn.runtimes.faults import Fault

log = logging.getLogger("edgefn.instance")

# After the exit, output is relayed until EOF or this long (a grandchild may hold it).
OUTPUT_DRAIN = 0.5
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Handshake:
    """What a runtime said about itself when it became ready."""

    methods: tuple[str, ...] = ("Call",)
    concurrent: bool | None = None  # may its handler run calls concurrently? None: not said
    batch: bool = False  # takes Batch frames on Talk
    address: str | None = None  # the address it bound, if it said

    @property
    def talk(self) -> bool:
        return "Talk" in self.methods


def parse_handshake(line: bytes, name: str) -> Handshake:
    """Read a handshake line; raise the load ``Fault`` it reports, or one saying it is malformed."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise Fault(faults.UNKNOWN_FAULT, f"{name} wrote no handshake: {line[:200]!r}") from None
    if not isinstance(data, dict):
        raise Fault(faults.UNKNOWN_FAULT, f"{name} wrote a malformed handshake: {line[:200]!r}")
    if not data.get("ready"):
        stack = data.get("errorStack")
        raise Fault(
            str(data.get("errorType", faults.UNKNOWN_FAULT)),
            str(data.get("errorMessage", "")),
            [str(frame) for frame in stack] if isinstance(stack, list) else [],
        )
    methods = data.get("methods")
    concurrent = data.get("concurrent")
    address = data.get("address")
    return Handshake(
        methods=tuple(str(m) for m in methods) if isinstance(methods, list) and methods else ("Call",),
        concurrent=concurrent if isinstance(concurrent, bool) else None,
        batch=data.get("batch") is True,
        address=address if isinstance(address, str) else None,
    )


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol, plus a callback with the exit status the moment the process is reaped."""

    def __init__(self, on_exit: Callable[[int | None], None], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self._exit_callback = on_exit
        self._process: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # uvloop's process transport has the methods, not the asyncio base class.
        self._process = transport  # type: ignore[assignment]

    def process_exited(self) -> None:
        super().process_exited()
        # From the protocol's own transport: when a cancelled spawn is undone, the
        # process is reaped before subprocess_exec ever returned its transport.
        self._exit_callback(self._process.get_returncode() if self._process is not None else None)


class _Adopted:
    """What :class:`RuntimeProcess` uses of a subprocess transport and its protocol, for the
    standby runtime it took over: stdout and stderr read on the loop, the exit seen on a pidfd."""

    def __init__(self, started: standby.Standby, on_exit: Callable[[int | None], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._started = started
        self._on_exit = on_exit
        self._loop = loop
        self._returncode: int | None = None
        self.stdout = asyncio.StreamReader(limit=2**16, loop=loop)
        self.stderr = asyncio.StreamReader(limit=2**16, loop=loop)
        self._pipes: list[asyncio.BaseTransport] = []

    async def connect(self) -> None:
        for fd, reader in ((self._started.stdout, self.stdout), (self._started.stderr, self.stderr)):
            transport, _ = await self._loop.connect_read_pipe(
                lambda reader=reader: asyncio.StreamReaderProtocol(reader, loop=self._loop),  # type: ignore[misc]
                os.fdopen(fd, "rb", buffering=0))
            self._pipes.append(transport)
        self._loop.add_reader(self._started.pidfd, self._reap)

    def get_pid(self) -> int:
        return self._started.pid

    def get_returncode(self) -> int | None:
        return self._returncode

    def send_signal(self, signum: int) -> None:
        if self._returncode is None:  # not reaped: the pid is still ours
            os.kill(self._started.pid, signum)

    def close(self) -> None:
        if self._returncode is None:
            self.send_signal(signal.SIGKILL)
            self._wait()
        for pipe in self._pipes:
            pipe.close()
        if self._pipes:  # once: stdin was held open until now (its EOF tells the runtime we are gone)
            self._pipes.clear()
            os.close(self._started.stdin)

    def _reap(self) -> None:
        """The pidfd turned readable: the process has exited."""
        self._wait()
        self._on_exit(self._returncode)

    def _wait(self) -> None:
        self._loop.remove_reader(self._started.pidfd)
        _, status = os.waitpid(self._started.pid, 0)  # it has exited (or was just killed): no wait
        os.close(self._started.pidfd)
        self._returncode = os.waitstatus_to_exitcode(status)


class RuntimeProcess:
    """One runtime process: spawn, (handshake), relay its output, signal it, see it exit.

    ``on_exit`` is called once, on the loop, when the process has been reaped.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        cwd: Path | None,
        env: Mapping[str, str],
        on_exit: Callable[[], None],
        identity: Identity | None = None,
    ) -> None:
        self.name = name
        self.pid: int | None = None
        self.returncode: int | None = None
        self.exit = asyncio.Event()
        self._argv = list(argv)
        self._cwd = cwd
        self._env = dict(env)
        self._on_exit = on_exit
        # instance.user/group: started as that uid and gid, without the manager's groups.
        self._as = identity.spawn_options() if identity is not None and identity.differs() else {}
        self._transport: asyncio.SubprocessTransport | _Adopted | None = None
        self._protocol: _Protocol | _Adopted | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self._output = OutputRelay(log, name)  # stdout and stderr share one cap

    @property
    def exited(self) -> bool:
        return self.exit.is_set()

    async def spawn(self) -> None:
        """Start the process (or adopt the standby runtime) and relay its stderr; raises ``OSError``
        when it cannot be executed."""
        loop = asyncio.get_running_loop()
        cwd = None if self._cwd is None else str(self._cwd)
        if (started := standby.take(self._argv, cwd, self._env, self._as)) is not None:
            adopted = _Adopted(started, self._exited, loop)
            await adopted.connect()
            self._transport = self._protocol = adopted
        else:
            self._transport, self._protocol = await self._exec(loop)
        self.pid = self._transport.get_pid()
        assert self._protocol.stderr is not None
        self._relay(self._protocol.stderr, "stderr")

    async def _exec(self, loop: asyncio.AbstractEventLoop) -> tuple[asyncio.SubprocessTransport, _Protocol]:
        return await loop.subprocess_exec(
            lambda: _Protocol(self._exited, loop),
            *self._argv,
            cwd=self._cwd,
            env=self._env,
            stdin=asyncio.subprocess.PIPE,  # held open: EOF tells the runtime we are gone
            stdout=asyncio.subprocess.PIPE,  # the handshake line, then relayed
            stderr=asyncio.subprocess.PIPE,  # relayed into our log
            start_new_session=True,  # its own process group: a terminal's Ctrl-C reaches only the manager
            **self._as,
        )

    async def handshake(self) -> Handshake:
        """Read the handshake line; raise its load fault, or a crash fault if the process ends first."""
        assert self._protocol is not None and self._protocol.stdout is not None
        line = await self._protocol.stdout.readline()
        if not line:
            await self.exit.wait()
            raise Fault(faults.INSTANCE_CRASHED, f"{self.name} {self.describe_exit()} before it was ready")
        return parse_handshake(line, self.name)

    def relay_stdout(self) -> None:
        """Relay stdout into the log from now on (a runtime may go on writing to it: the pipe must not fill)."""
        assert self._protocol is not None and self._protocol.stdout is not None
        self._relay(self._protocol.stdout, "stdout")

    def describe_exit(self) -> str:
        """``exited with status 3`` / ``killed by signal 9`` (or ``running``)."""
        code = self.returncode
        if code is None:
            return "running"
        return f"killed by signal {-code}" if code < 0 else f"exited with status {code}"

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process (nothing once it has exited)."""
        if self._transport is not None and not self.exited:
            with contextlib.suppress(ProcessLookupError):
                self._transport.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the process and everything it started (its process group)."""
        self.signal(signal.SIGKILL)
        self._kill_group()

    def _kill_group(self) -> None:
        # The runtime leads its own process group (a new session): a handler's
        # children and grandchildren are in it, and go with it.
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    async def wait(self, timeout: float) -> bool:
        """Wait for the exit up to ``timeout`` seconds; True if it exited."""
        if self.exited:
            return True
        if timeout <= 0:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self.exit.wait()
        except TimeoutError:
            return False
        return True

    def rss(self) -> int | None:
        """Resident memory of the process and its descendants in bytes (None if it is gone)."""
        if self.exited or self.pid is None:
            return None
        return group_rss({self.pid}).get(self.pid)

    async def close(self) -> None:
        """Kill it if it lives, wait for its exit and its last words, release the pipes."""
        if self._transport is not None and not self.exited:
            self.kill()
            await self.exit.wait()
        self._kill_group()  # what the runtime started must not outlive it
        if self._relays:
            await asyncio.wait(list(self._relays), timeout=OUTPUT_DRAIN)  # the last words of a crash
        for task in list(self._relays):
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()

    def _exited(self, returncode: int | None) -> None:
        """The child watcher reaped the process (called on the loop, once)."""
        self.returncode = returncode
        self.exit.set()
        self._on_exit()

    def _relay(self, stream: asyncio.StreamReader, what: str) -> None:
        task = asyncio.create_task(self._relay_lines(stream), name=f"{self.name}:{what}")
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)

    async def _relay_lines(self, stream: asyncio.StreamReader) -> None:
        """Relay the process's output into the log, line by line (capped), until EOF."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # longer than the buffer: dropped, and reading goes on
                line = b"(a line too long to relay was dropped)"
            if not line:
                return self._output.close()
            self._output.relay(line)


def group_rss(groups: set[int]) -> dict[int, int]:
    """Resident memory, in bytes, of every process group in ``groups`` (all its members summed).

    Blocking (it reads /proc): call it from a thread when it runs often.
    """
    usage: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # After the command's ")": state, ppid, pgrp, ... rss is the 22nd (0-based 21), in pages.
        group = int(fields[2])
        if group in groups and fields[0] != b"Z":
            usage[group] = usage.get(group, 0) + int(fields[21]) * PAGE_SIZE
    return usage
