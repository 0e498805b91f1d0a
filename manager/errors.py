"""The root of every error a user can act on.

Each component keeps its own small vocabulary (``ConfigError``, ``HubError``,
``BrokerError``, ``ServerError``, ``LaunchError``, ...), and every one of them
derives from :class:`EdgefnError`. The command line catches this one class at
its boundary and prints the message as it is, without a traceback: the message
is written for the operator and names the config key or file at fault. Anything
else reaching the boundary is a bug in edgefn.
"""

from __future__ import annotations


class EdgefnError(Exception):
    """A failure the user can fix; ``str()`` says what and where (key or file)."""


def user_errors(exc: BaseException) -> list[EdgefnError] | None:
    """The EdgefnErrors ``exc`` stands for (an exception group flattened), or None if any is not one.

    A TaskGroup wraps what its body raised in an ExceptionGroup; the user must
    still see the message, not the group.
    """
    if isinstance(exc, EdgefnError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        found: list[EdgefnError] = []
        for inner in exc.exceptions:
            errors = user_errors(inner)
            if errors is None:
                return None
            found.extend(errors)
        return found
    return None
