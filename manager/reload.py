"""``edgefn dev``: hot reload of the config file and every function's code.

Reload restarts processes, never ``importlib.reload``: a code change gives the
function a fresh pool whose instances import the new code, while calls in
flight finish on the old instances. Each validated version of a codedir is
copied into a snapshot and instances run from it, so an instance started later
(scale-up, crash replacement) never imports a file that broke after it: broken
code keeps the last good version serving until the file is fixed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

from watchfiles import DefaultFilter, awatch

from edgefn.manager.app import Manager, ReloadError
from edgefn.manager.config import Config, ConfigError, FrozenEnv, FunctionConfig, load_config
from edgefn.manager.errors import EdgefnError
from edgefn.manager.identity import traversable

log = logging.getLogger("edgefn.reload")

# Editors save in bursts (write, rename, chmod); this groups one save into one reload.
DEBOUNCE_MS = 50
STEP_MS = 20
# Beyond shutdown.timeout, how long a replaced snapshot is kept: its instances' exit after a forced stop.
PRUNE_MARGIN = 2.0
# Never copied into a snapshot: bytecode, VCS data, and node_modules (linked instead: it is big and churns).
SNAPSHOT_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", "node_modules")


class ChangeFilter(DefaultFilter):
    """watchfiles' defaults (``__pycache__``, ``*.pyc``, ``node_modules``, swap files) plus dotfiles."""

    def __init__(self) -> None:
        super().__init__(
            ignore_entity_patterns=(*DefaultFilter.ignore_entity_patterns, r"^\.", r"^4913$", r"~$"),
        )


class Snapshots:
    """The code each function's runner uses: a copy of its last good codedir.

    ``take`` stages a new copy; ``commit`` makes the staged copies current once
    they loaded; ``discard`` throws them away when they did not; ``prune``
    deletes the copies replaced long enough ago that no instance runs from them.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._numbers = itertools.count(1)
        self._current: dict[str, tuple[FunctionConfig, FunctionConfig]] = {}
        self._staged: dict[str, tuple[FunctionConfig, FunctionConfig]] = {}
        self._replaced: list[tuple[float, Path]] = []  # (when, copy): its old instances may still run

    def take(self, function: FunctionConfig) -> None:
        """Copy ``function``'s codedir now (blocking: call it from a thread) and stage it."""
        if function.codedir is None:
            return
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", function.name)
        target = self._root / f"{safe}-{next(self._numbers)}"
        shutil.copytree(function.codedir, target, symlinks=True, ignore=SNAPSHOT_IGNORE)
        if function.instance.identity is not None and function.instance.identity.differs():
            traversable(self._root)  # the copy keeps the code's modes; its user must reach it (instance.user)
        modules = function.codedir / "node_modules"
        if modules.is_dir():
            (target / "node_modules").symlink_to(modules, target_is_directory=True)
        env = FrozenEnv({**function.env, "PYTHONDONTWRITEBYTECODE": "1"})
        self._staged[function.name] = (function, replace(function, codedir=target, env=env))

    def prepare(self, function: FunctionConfig) -> FunctionConfig:
        """The config a runner of ``function`` should use: its snapshot when there is one."""
        for table in (self._staged, self._current):
            entry = table.get(function.name)
            if entry is not None and entry[0] == function:
                return entry[1]
        return function

    def commit(self) -> None:
        now = time.monotonic()
        for name in self._staged:
            old = self._current.get(name)
            if old is not None and old[1].codedir is not None:
                self._replaced.append((now, old[1].codedir))
        self._current.update(self._staged)
        self._staged.clear()

    def discard(self) -> None:
        """Delete the staged copies (blocking: call it from a thread)."""
        for _, snapshot in self._staged.values():
            if snapshot.codedir is not None:
                shutil.rmtree(snapshot.codedir, ignore_errors=True)
        self._staged.clear()

    def prune(self, age: float) -> None:
        """Delete copies replaced more than ``age`` seconds ago (blocking: call it from a thread).

        Each save makes a copy; without this a long session fills the temp folder.
        """
        cutoff = time.monotonic() - age
        for _, folder in [entry for entry in self._replaced if entry[0] < cutoff]:
            shutil.rmtree(folder, ignore_errors=True)
        self._replaced = [entry for entry in self._replaced if entry[0] >= cutoff]


class Reloader:
    """Watches the config file's folder and every codedir; applies each change to ``manager``."""

    def __init__(self, manager: Manager, snapshots: Snapshots) -> None:
        self.manager = manager
        self.snapshots = snapshots

    def _roots(self) -> list[Path]:
        config = self.manager.config
        roots = {config.path.parent}
        roots.update(function.codedir for function in config.functions if function.codedir is not None)
        return sorted(roots)

    async def run(self) -> None:
        """Watch and reload until cancelled."""
        while True:
            roots = self._roots()
            log.info("watching %s", ", ".join(str(root) for root in roots))
            async for changes in awatch(*roots, watch_filter=ChangeFilter(), debounce=DEBOUNCE_MS, step=STEP_MS):
                try:
                    await self.apply({Path(path) for _, path in changes})
                except EdgefnError as exc:  # e.g. a hub TLS file that is not PEM: its message says it all
                    log.error("reload failed: %s; what was applied stays (save again to retry)", exc)
                except Exception:  # the watcher's failure would cancel the manager it runs beside
                    log.exception("reload failed unexpectedly; what was applied stays (save again to retry)")
                if self._roots() != roots:
                    break  # the config moved a codedir: watch the new set

    async def apply(self, paths: set[Path]) -> None:
        """Reload what ``paths`` touched: the config file, functions' code, or both."""
        current = self.manager.config
        config_changed = current.path in paths
        code_changed = {
            function.name
            for function in current.functions
            if function.codedir is not None and any(path.is_relative_to(function.codedir) for path in paths)
        }
        if not config_changed and not code_changed:
            return  # e.g. a log file beside the config: logging about it here would feed a loop
        log.debug("changed: %s", ", ".join(sorted(str(path) for path in paths)))
        new = await self._load(current) if config_changed else current
        if new is None:
            return
        before = {function.name: function for function in current.functions}
        staged = [f for f in new.functions if f.codedir and (f.name in code_changed or before.get(f.name) != f)]
        try:
            await asyncio.to_thread(lambda: [self.snapshots.take(function) for function in staged])
        except OSError as exc:  # a codedir removed or renamed mid-edit (branch switch, rm -r)
            await asyncio.to_thread(self.snapshots.discard)
            log.error("cannot snapshot the changed code, the last good version keeps serving: %s", exc)
            return
        try:
            await self.manager.reconfigure(new, code_changed)
        except ReloadError as exc:
            await asyncio.to_thread(self.snapshots.discard)
            _log_lines("reload failed, the last good version keeps serving:", str(exc).splitlines())
            return
        self.snapshots.commit()
        # A replaced runner is gone within shutdown.timeout (see Manager._retire); then its copy can go.
        await asyncio.to_thread(self.snapshots.prune, self.manager.config.shutdown.timeout + PRUNE_MARGIN)

    async def _load(self, current: Config) -> Config | None:
        try:
            return await asyncio.to_thread(load_config, current.path)
        except ConfigError as exc:
            _log_lines(f"{current.path.name} has {len(exc.problems)} problem(s); the running config stays:",
                       [str(problem) for problem in exc.problems])
            return None


def _log_lines(headline: str, lines: list[str]) -> None:
    """One record per line: the log escapes newlines, so a multi-line message would become one long line."""
    log.error("%s", headline)
    for line in lines:
        log.error("  %s", line)
