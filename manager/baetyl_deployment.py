"""A Baetyl v1 deployment on disk, read for ``edgefn import-baetyl``.

A deployment is an ``application.yml`` (services, each with an image and
mounts; volumes naming host folders) plus a ``service.yml`` per service, found
through its mounts. :class:`Deployment` finds and reads those files and maps a
path inside a service's container back to the host; :mod:`.baetyl` maps what
it reads to edgefn's config. Plain scalars are kept as written
(:class:`Verbatim`), so ``password: 0123`` or ``env: {COUNTRY: NO}`` come out
exactly as they went in.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "APPLICATION", "BaetylError", "Deployment", "Json", "Mount", "Note", "Report", "Service", "Verbatim",
    "as_list", "as_mapping", "as_number", "dump", "read_yaml", "shown",
]

APPLICATION = "application.yml"
CONFIG_IN_CONTAINER = "etc/baetyl/service.yml"  # where every Baetyl service reads its config

Json = Any  # a value read from YAML: dict, list, str (Verbatim for plain scalars) or None
Report = Callable[[str, str], None]  # (key, message) about one source file


@dataclass(frozen=True)
class Note:
    """One thing that was not carried over, or carried over changed."""

    file: str  # the Baetyl file, as shown to the user
    key: str  # its YAML path, like "functions[0].timeout"; "" for the file itself
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"


class BaetylError(Exception):
    """The deployment cannot be imported: there is nothing to write."""

    def __init__(self, message: str, notes: list[Note] | None = None) -> None:
        super().__init__(message)
        self.notes = list(notes or [])


class Verbatim(str):
    """A plain (unquoted) YAML scalar, written back exactly as it was read."""


# -- reading YAML as written --------------------------------------------------------------

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_FLATTENER = yaml.SafeLoader("")  # flatten_mapping (YAML merge keys) needs a loader instance


def read_yaml(path: Path) -> Json:
    """The document at ``path``; raises OSError, UnicodeDecodeError or yaml.YAMLError."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    return None if node is None else _plain(node)


def _plain(node: yaml.Node) -> Json:
    if isinstance(node, yaml.MappingNode):
        _FLATTENER.flatten_mapping(node)
        return {str(key.value): _plain(value) for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item) for item in node.value]
    if isinstance(node, yaml.ScalarNode) and node.style is None:
        return None if node.value in _NULLS else Verbatim(node.value)
    return str(node.value)


class _Dumper(yaml.SafeDumper):
    """Writes a :class:`Verbatim` plain, with whatever type its text reads as; indents lists."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # "rules:\n  - ...", as edgefn's docs write it


class _Flow(dict[str, Json]):
    """A small mapping written on one line: ``subscribe: {topic: t, qos: 1}``."""


def _represent_verbatim(dumper: yaml.SafeDumper, data: Verbatim) -> yaml.Node:
    tag = dumper.resolve(yaml.ScalarNode, str(data), (True, False))
    return dumper.represent_scalar(tag, str(data))


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


_Dumper.add_representer(Verbatim, _represent_verbatim)
_Dumper.add_representer(_Flow, _represent_flow)


def dump(config: Mapping[str, Json]) -> str:
    """``config`` as edgefn YAML: keys in the order given, a blank line between sections, each
    rule's parts on one line, and ``$`` escaped where edgefn would expand it."""
    config = dict(_escaped(dict(config)))
    if isinstance(config.get("rules"), list):
        config["rules"] = [{key: _flat(value) for key, value in as_mapping(rule).items()} for rule in config["rules"]]
    return "\n".join(
        yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                  width=100)
        for key, value in config.items()
    )


def _flat(value: Json) -> Json:
    """``value`` as a one-line mapping when it holds scalars only."""
    if isinstance(value, dict) and not any(isinstance(item, (dict, list)) for item in value.values()):
        return _Flow(value)
    return value


def _escaped(value: Json) -> Json:
    """``value`` with ``$`` doubled where edgefn would otherwise expand ``${VAR}`` or ``$$``."""
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    if isinstance(value, str) and ("${" in value or "$$" in value):
        return type(value)(value.replace("$", "$$"))
    return value


def as_mapping(value: Json) -> dict[str, Json]:
    return value if isinstance(value, dict) else {}


def as_list(value: Json) -> list[Json]:
    return value if isinstance(value, list) else []


def as_number(value: Json, default: int = 0) -> int:
    try:
        return int(str(value), 10)
    except ValueError:
        return default


# -- the deployment on disk ---------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    volume: str
    path: str  # inside the container, normalised: no leading "/", no trailing "/"


@dataclass(frozen=True)
class Service:
    """One entry of application.yml's ``services``."""

    index: int
    name: str
    image: str
    mounts: tuple[Mount, ...]
    raw: Mapping[str, Json]

    @property
    def key(self) -> str:
        return f"services[{self.index}]"

    @property
    def image_name(self) -> str:
        """The image's last path part without its tag: ``baetyl-function-python36``."""
        last = self.image.rsplit("/", 1)[-1]
        return last.split("@", 1)[0].split(":", 1)[0]


def _inside(path: str) -> str:
    """A path inside a container, normalised so that mounts compare as prefixes."""
    normal = posixpath.normpath("/" + str(path).strip())
    return normal.lstrip("/")


def _service(index: int, raw: Json) -> Service:
    entry = as_mapping(raw)
    mounts = tuple(
        Mount(str(mount.get("name", "")), _inside(str(mount.get("path", ""))))
        for mount in map(as_mapping, as_list(entry.get("mounts")))
    )
    return Service(index, str(entry.get("name") or f"#{index}"), str(entry.get("image") or ""), mounts, entry)


class Deployment:
    """application.yml and the files its services' mounts lead to.

    Baetyl's volume paths are relative to its work dir (``var/db/baetyl/x``);
    the folder holding application.yml is usually ``<workdir>/var/db/baetyl``.
    A volume is looked for under that folder and each of its ancestors, then as
    the folder's own entry named like the volume (a copied-out deployment).
    """

    def __init__(self, source: Path) -> None:
        self.application = source / APPLICATION if source.is_dir() else source
        self.folder = self.application.resolve().parent
        self.notes: list[Note] = []
        self._volumes: dict[str, Path | None] = {}
        document = self._read(self.application)
        if not isinstance(document, dict):
            raise BaetylError(f"{shown(self.application)}: expected a mapping with services and volumes")
        self.services = tuple(_service(index, raw) for index, raw in enumerate(as_list(document.get("services"))))
        self.volume_paths = {
            str(volume.get("name")): (index, str(volume.get("path") or ""))
            for index, volume in enumerate(map(as_mapping, as_list(document.get("volumes"))))
        }

    def _read(self, path: Path) -> Json:
        try:
            return read_yaml(path)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise BaetylError(f"cannot read {shown(path)}: {reason}") from exc
        except yaml.YAMLError as exc:
            raise BaetylError(f"{shown(path)} is not valid YAML: {exc}") from exc

    def report(self, file: Path | str) -> Report:
        """A function recording notes about ``file``."""
        where = file if isinstance(file, str) else shown(file)
        return lambda key, message: self.notes.append(Note(where, key, message))

    def service(self, name: str) -> Service | None:
        return next((service for service in self.services if service.name == name), None)

    def volume(self, name: str) -> Path | None:
        """The host folder of the volume ``name`` (noted once when it cannot be found)."""
        if name not in self._volumes:
            self._volumes[name] = self._find_volume(name)
        return self._volumes[name]

    def _find_volume(self, name: str) -> Path | None:
        note = self.report(self.application)
        if name not in self.volume_paths:
            note("volumes", f"no volume named {name!r}, which a service mounts")
            return None
        index, path = self.volume_paths[name]
        given = Path(path)
        bases = [given] if given.is_absolute() else [base / given for base in (self.folder, *self.folder.parents)]
        candidates = [*bases, self.folder / name, self.folder / given.name]
        found = next((candidate for candidate in candidates if candidate.exists()), None)
        if found is None:
            note(f"volumes[{index}].path", f"cannot find the folder of volume {name!r} ({path}): not under "
                 f"{shown(self.folder)} or its parents, and no {shown(self.folder / name)}")
        return found

    def host_path(self, service: Service, inside: str) -> Path | None:
        """The host path of ``inside`` (a path in ``service``'s container), through its mounts."""
        target = _inside(inside)
        covering = [mount for mount in service.mounts
                    if mount.path == "" or target == mount.path or target.startswith(mount.path + "/")]
        if not covering:
            return None
        mount = max(covering, key=lambda mount: len(mount.path))
        folder = self.volume(mount.volume)
        rest = target[len(mount.path):].lstrip("/")
        return None if folder is None else (folder / rest if rest else folder)

    def config_of(self, service: Service) -> tuple[dict[str, Json], Path] | None:
        """``service``'s service.yml (``-c`` in its args, else etc/baetyl/service.yml) and its path."""
        args = [str(arg) for arg in as_list(service.raw.get("args"))]
        inside = args[args.index("-c") + 1] if "-c" in args[:-1] else CONFIG_IN_CONTAINER
        path = self.host_path(service, inside)
        note = self.report(self.application)
        if path is None:
            note(f"{service.key}.mounts", f"service {service.name!r}: no mounted volume holds its config {inside}")
            return None
        try:
            document = read_yaml(path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            note(f"{service.key}.mounts", f"service {service.name!r}: cannot read its config {shown(path)}: "
                 f"{getattr(exc, 'strerror', None) or exc}")
            return None
        if not isinstance(document, dict):
            self.report(path)("", "expected a mapping; ignored")
            return None
        return document, path


def shown(path: Path) -> str:
    """``path`` relative to the current folder when it is under it, else absolute."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
