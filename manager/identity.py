"""Running a function's instances as another user: ``instance.user`` / ``instance.group``.

A manager running as root may start a function's instances as an unprivileged
user, so a function cannot read the manager's environment (``/proc/PID/environ``
is closed to other users), its config or other functions' files. This module
resolves the names at load, says before the start what would fail (not root,
code or runtime the user cannot reach), and makes the instance's socket folder
reachable to that user alone.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgefn.manager.errors import EdgefnError


class IdentityError(EdgefnError):
    """A function cannot run as its ``instance.user``/``instance.group`` here."""


@dataclass(frozen=True)
class Identity:
    """Who a function's instances run as: ids resolved once at load, and the user's home."""

    uid: int
    gid: int
    home: str
    name: str  # for messages: "nobody", "65534", "nobody:nogroup"

    def differs(self) -> bool:
        """True unless it is exactly who the manager runs as."""
        return (self.uid, self.gid) != (os.geteuid(), os.getegid())

    def spawn_options(self) -> dict[str, object]:
        """What ``subprocess_exec`` needs to start a process as this identity.

        ``extra_groups=[]`` drops the manager's supplementary groups (root's, often
        ``root`` itself): the instance gets the user and group asked for, nothing more.
        """
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def resolve_user(text: str) -> tuple[pwd.struct_passwd | None, str | None]:
    """The passwd entry of a user name or numeric uid, or the problem."""
    try:
        entry = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except (KeyError, OverflowError):
        kind = "uid" if text.isdigit() else "user"
        return None, f"no {kind} {text!r} on this machine (see /etc/passwd)"
    return entry, None


def resolve_group(text: str) -> tuple[int | None, str | None]:
    """The gid of a group name or numeric gid, or the problem."""
    try:
        return (grp.getgrgid(int(text)) if text.isdigit() else grp.getgrnam(text)).gr_gid, None
    except (KeyError, OverflowError):
        kind = "gid" if text.isdigit() else "group"
        return None, f"no {kind} {text!r} on this machine (see /etc/group)"


def identity_of(entry: pwd.struct_passwd | None, gid: int | None, name: str) -> Identity:
    """The identity of a user's passwd ``entry`` and a group (either may be None, not both).

    Without a group, the user's primary group; without a user, the manager's
    own uid with that group (and the manager's home).
    """
    if entry is None:
        assert gid is not None
        return Identity(os.geteuid(), gid, os.environ.get("HOME", "/"), name)
    return Identity(entry.pw_uid, entry.pw_gid if gid is None else gid, entry.pw_dir, name)


def problems(function: str, who: Identity, codedir: Path | None, executable: str) -> list[str]:
    """What would stop ``function``'s instances from running as ``who``: one line each."""
    if not who.differs():
        return []
    if os.geteuid() != 0:
        return [f"function {function}: instance.user/group {who.name!r} needs the manager to run as root "
                f"(it runs as uid {os.geteuid()})"]
    found = []
    if codedir is not None and (closed := closed_to(who, codedir, want=os.R_OK | os.X_OK)) is not None:
        found.append(f"function {function}: its codedir {codedir} is not readable by {who.name!r}: {closed}")
    if (closed := closed_to(who, Path(executable), want=os.X_OK)) is not None:
        found.append(f"function {function}: its runtime {executable} cannot be executed by {who.name!r}: {closed}")
    return found


def closed_to(who: Identity, path: Path, want: int) -> str | None:
    """Why ``who`` cannot reach ``path`` with ``want`` (``os.R_OK``, ``os.X_OK``), or None.

    ``os.access`` answers for the manager (root: always yes), so the mode bits
    are read here as the kernel would for that uid and gid: every folder on
    the way must be searchable, and the target itself must allow ``want``.
    Symlinks are followed (the real folders are the ones that count).
    """
    real = Path(os.path.realpath(path))
    for folder in reversed(real.parents):
        if not _allows(who, folder, os.X_OK):
            return f"{folder} is closed to it (mode {_mode(folder)})"
    if not _allows(who, real, want):
        return f"{real} has mode {_mode(real)}"
    return None


def _allows(who: Identity, path: Path, want: int) -> bool:
    try:
        info = path.stat()
    except OSError:
        return False
    if who.uid == 0:
        return True
    if info.st_uid == who.uid:
        bits = info.st_mode >> 6
    elif info.st_gid == who.gid:
        bits = info.st_mode >> 3
    else:
        bits = info.st_mode
    return (bits & want) == want


def _mode(path: Path) -> str:
    try:
        return stat.filemode(path.stat().st_mode)
    except OSError:
        return "unknown"


def socket_folder(parent: Path, name: str, who: Identity) -> Path:
    """A folder for one pool's sockets that ``who`` alone (and root) can reach.

    The instance binds its socket, so it needs write access to the folder: a
    subfolder ``parent/name`` owned by the user, mode 0700. The manager's own
    folder (``parent``, 0700) must then be traversable by that user: it gets
    the search bit for others (0711), never read or write, so nobody can list
    it or add to it. What a user could reach by guessing a name in it is safe:
    the owner marker (a pid and a start time), the subfolders of other
    identities (0700, each its own user's), and the sockets of instances that
    run as the manager's user: connecting to a unix socket needs write
    permission on it, which the runtimes' default umask (022) gives no one else.
    """
    folder = parent / name
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chown(folder, who.uid, who.gid)
    folder.chmod(0o700)  # mkdir's mode is masked by the umask: set it exactly
    traversable(parent)
    return folder


def traversable(folder: Path) -> None:
    """Let other users pass through ``folder`` (add the search bits; never read or write)."""
    mode = stat.S_IMODE(folder.stat().st_mode)
    if not mode & stat.S_IXOTH:
        folder.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)


def require(checks: Iterable[str]) -> None:
    """Raise one IdentityError listing every problem, if any."""
    lines = list(checks)
    if lines:
        raise IdentityError("\n".join(lines))
