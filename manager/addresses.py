"""Every address form edgefn reads: the MQTT hub's URL, the gRPC server's listen
address, and the gRPC target of a runtime instance (or of ``edgefn call``).

The parsers raise ValueError with a message saying what was expected, so the
config reader can put it next to the YAML path and the CLI next to its flag.
This module is imported by the runtimes too: standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# A hub address's port when it names none: MQTT's registered ports for tcp and ssl,
# the URL defaults for websockets (what any ws:// URL means).
DEFAULT_PORTS = {"tcp": 1883, "ssl": 8883, "ws": 80, "wss": 443}
DEFAULT_WEBSOCKET_PATH = "/mqtt"
# sun_path is 108 bytes on Linux, one of them the terminating NUL.
UNIX_PATH_MAX = 107

_HUB_FORMS = "scheme://host[:port] with scheme tcp, ssl, ws or wss (ws and wss may add a /path)"
_SERVER_FORMS = "host:port (port 0: any free port) or unix:///absolute/path (unix:relative/path too)"
_TARGET_FORMS = "unix:///abs/path.sock, unix:rel/path.sock, host:port or tcp://host:port"


@dataclass(frozen=True)
class HubAddress:
    scheme: str
    host: str
    port: int
    websocket_path: str


def parse_hub_address(text: str) -> HubAddress:
    """Split ``tcp://host:1883``-style addresses; ValueError says what was expected."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.netloc:
        raise ValueError(f"expected {_HUB_FORMS}, got {text!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials belong in hub.username and hub.password, not in the address")
    if parts.query or parts.fragment:
        raise ValueError(f"expected {_HUB_FORMS}, got {text!r} (no ?query or #fragment)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {text!r}; expected a number between 1 and 65535") from None
    if port == 0:
        raise ValueError(f"bad port in {text!r}; expected a number between 1 and 65535")
    if not parts.hostname:
        raise ValueError(f"expected {_HUB_FORMS}, got {text!r} (no host)")
    path = parts.path
    if scheme in ("tcp", "ssl") and path not in ("", "/"):
        raise ValueError(f"only ws:// and wss:// addresses take a path, got {text!r}")
    return HubAddress(
        scheme, parts.hostname, port or DEFAULT_PORTS[scheme], path or DEFAULT_WEBSOCKET_PATH
    )


def parse_server_address(text: str, folder: Path) -> str:
    """Normalise a gRPC listen address: ``host:port``, or ``unix://`` + an absolute path.

    A relative unix path is resolved against ``folder`` (the config's), like
    every path in a config.
    """
    stripped = text.strip()
    if stripped.startswith("unix:"):
        return _unix_address(stripped, folder, text)
    host, colon, port_text = stripped.rpartition(":")
    if not colon or not host or not port_text.isdigit():
        raise ValueError(f"expected {_SERVER_FORMS}, got {text!r}")
    if host.startswith("[") != host.endswith("]") or ("[" not in host and ":" in host):
        raise ValueError(f"expected {_SERVER_FORMS} (an IPv6 host in brackets: [::1]:50051), got {text!r}")
    if int(port_text) > 65535:
        raise ValueError(f"bad port in {text!r}; expected a number between 0 and 65535")
    return f"{host}:{int(port_text)}"


def _unix_address(stripped: str, folder: Path, text: str) -> str:
    rest = stripped[len("unix:"):]
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise ValueError(f"expected unix:///absolute/path or unix:relative/path, got {text!r}")
    if not rest:
        raise ValueError(f"expected {_SERVER_FORMS}, got {text!r} (no path)")
    socket = (folder / rest).resolve()
    if len(os.fsencode(socket)) > UNIX_PATH_MAX:
        raise ValueError(f"the socket path {socket} is longer than {UNIX_PATH_MAX} bytes, "
                         "the most a unix socket allows")
    if not socket.parent.is_dir():
        raise ValueError(f"the socket's folder {socket.parent} does not exist")
    return f"unix://{socket}"


def parse_target(address: str) -> str:
    """The gRPC target (to bind or to dial) of an instance address, or ValueError.

    Accepts ``unix:///abs/path.sock``, ``unix:rel/path.sock``, ``host:port`` and
    ``tcp://host:port`` (grpc takes all but the last as they are).
    """
    path = unix_path(address)
    if path is not None:
        if address.startswith("unix://") and not address.startswith("unix:///"):
            raise ValueError(f"bad address {address!r}: unix:// needs an absolute path (unix:///abs/path.sock)")
        if address in ("unix:", "unix:///") or address.endswith("/"):
            raise ValueError(f"bad address {address!r}: no socket file named")
        return address
    target = address.removeprefix("tcp://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"bad address {address!r}: expected {_TARGET_FORMS}")
    return target


def unix_path(address: str) -> Path | None:
    """The socket file of a ``unix:`` address (``unix:///abs`` or ``unix:rel``); None for others."""
    if not address.startswith("unix:"):
        return None
    rest = address[len("unix:"):]
    return Path(rest[2:] if rest.startswith("//") else rest)
