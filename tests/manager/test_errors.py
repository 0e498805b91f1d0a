"""One root for user-facing errors; groups of them (a TaskGroup's) still read as their messages."""

from __future__ import annotations

import pytest

from edgefn.manager.app import ReloadError
from edgefn.manager.broker import BrokerError
from edgefn.manager.call import UsageError
from edgefn.manager.config import ConfigError
from edgefn.manager.errors import EdgefnError, user_errors
from edgefn.manager.hub import HubError
from edgefn.manager.launch import LaunchError
from edgefn.manager.logs import LogError
from edgefn.manager.server import ServerError


@pytest.mark.parametrize("kind", [BrokerError, ConfigError, HubError, LaunchError, LogError, ReloadError, ServerError,
                                  UsageError])
def test_every_user_facing_error_derives_from_the_root(kind: type) -> None:
    assert issubclass(kind, EdgefnError)


def test_a_group_of_user_errors_reads_as_its_errors_nested_or_not() -> None:
    hub, server = HubError("hub.address: refused"), ServerError("server.address: taken")
    group = ExceptionGroup("unhandled errors in a TaskGroup", [hub, ExceptionGroup("inner", [server])])
    assert user_errors(group) == [hub, server]
    assert user_errors(hub) == [hub]


def test_anything_else_is_not_a_user_error() -> None:
    assert user_errors(ValueError("a bug")) is None
    assert user_errors(ExceptionGroup("mixed", [HubError("x"), KeyError("bug")])) is None
