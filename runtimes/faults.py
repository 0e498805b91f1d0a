"""The fault vocabulary shared by the manager and the runtimes.

A failed call travels as a gRPC status code plus a JSON details string
``{"errorType", "errorMessage", "errorStack"}`` (SPEC §4). This module has no
grpc import so that every process (and the SQL engine) can use it cheaply;
codes are the numeric gRPC status codes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

# Numeric gRPC status codes (grpc.StatusCode.X.value[0]).
OK = 0
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
INTERNAL = 13
UNAVAILABLE = 14

HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
TIMEOUT = "Runtime.Timeout"
INSTANCE_CRASHED = "Runtime.InstanceCrashed"
MESSAGE_TOO_LARGE = "Runtime.MessageTooLarge"
UNSERIALIZABLE_RESULT = "Runtime.UnserializableResult"
OUT_OF_MEMORY = "Runtime.OutOfMemory"
UNAVAILABLE_FAULT = "Runtime.Unavailable"
UNKNOWN_FAULT = "Runtime.Unknown"
FUNCTION_NOT_FOUND = "Runtime.FunctionNotFound"
# A rule's output topic template rendered to a topic that cannot be published to.
INVALID_TOPIC = "Runtime.InvalidTopic"

# The gRPC code each runtime fault travels with (SPEC §4); a user's own
# exception (any other errorType) travels as UNKNOWN.
CODES: dict[str, int] = {
    HANDLER_NOT_FOUND: FAILED_PRECONDITION,
    IMPORT_MODULE_ERROR: FAILED_PRECONDITION,
    USER_CODE_SYNTAX_ERROR: FAILED_PRECONDITION,
    TIMEOUT: DEADLINE_EXCEEDED,
    INSTANCE_CRASHED: INTERNAL,
    MESSAGE_TOO_LARGE: RESOURCE_EXHAUSTED,
    UNSERIALIZABLE_RESULT: UNKNOWN,
    OUT_OF_MEMORY: RESOURCE_EXHAUSTED,
    UNAVAILABLE_FAULT: UNAVAILABLE,
    UNKNOWN_FAULT: UNKNOWN,
    FUNCTION_NOT_FOUND: NOT_FOUND,
    INVALID_TOPIC: FAILED_PRECONDITION,
}

# Faults that are not the function's answer: the call may be tried again (SPEC §6).
RETRIABLE = frozenset({INSTANCE_CRASHED, UNAVAILABLE_FAULT})

# The errorType of a failure without JSON details whose code gRPC itself gives
# (a deadline, a message over the size limit); any other code is Runtime.Unknown.
_TYPE_BY_CODE = {
    DEADLINE_EXCEEDED: TIMEOUT,
    RESOURCE_EXHAUSTED: MESSAGE_TOO_LARGE,
}
# Baetyl's runtimes wrap a handler's exception as "[UserCodeInvoke]": Python's
# ('[UserCodeInvoke] ', TypeError('boom')) repr, or Node's "[UserCodeInvoke]: TypeError: boom".
_BAETYL_REPR = re.compile(r"\[UserCodeInvoke\][^,]*,\s*([A-Za-z_][\w.]*)\((['\"])(.*)\2\)\)?\s*$", re.DOTALL)
_BAETYL_TEXT = re.compile(r"\[UserCodeInvoke\]'?,?:?\s*([A-Za-z_][\w.]*): (.*?)\)?\s*$", re.DOTALL)


class Fault(Exception):
    """A failed function call: the user's error or a runtime fault.

    ``error_type`` is the user's exception class name or a ``Runtime.*`` code;
    ``stack`` holds the user's frames only, paths relative to the codedir.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        stack: Sequence[str] = (),
        code: int | None = None,
    ) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.stack = list(stack)
        self.code = code if code is not None else CODES.get(error_type, UNKNOWN)

    @property
    def retriable(self) -> bool:
        """True for faults that are not the function's answer (SPEC §6)."""
        return self.error_type in RETRIABLE

    def to_dict(self) -> dict[str, object]:
        return {"errorType": self.error_type, "errorMessage": self.message, "errorStack": self.stack}

    def details(self) -> str:
        """The JSON details string a runtime returns with the gRPC status."""
        return orjson.dumps(self.to_dict()).decode()

    @classmethod
    def from_status(cls, code: int, details: str | None) -> "Fault":
        """Rebuild a fault from a gRPC status; tolerant of runtimes that send plain text."""
        if details:
            try:
                data = orjson.loads(details)
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("errorType"), str):
                stack = data.get("errorStack") or []
                if not isinstance(stack, list):
                    stack = [str(stack)]
                return cls(data["errorType"], str(data.get("errorMessage", "")), [str(s) for s in stack], code)
            if "[UserCodeInvoke]" in details:
                match = _BAETYL_REPR.search(details) or _BAETYL_TEXT.search(details)
                if match is not None:
                    return cls(match.group(1).rpartition(".")[2], match.groups()[-1], (), code)
        return cls(_TYPE_BY_CODE.get(code, UNKNOWN_FAULT), details or "", (), code)


class NotStarted(Fault):
    """The instance ended before this call started running: no fault of the call's.

    The manager's pool runs it elsewhere (or again) without spending a retry attempt.
    """

    def __init__(self, message: str) -> None:
        super().__init__(INSTANCE_CRASHED, message)
