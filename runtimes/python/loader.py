"""Finding a Python handler: ``module.attribute`` imported from the codedir.

Each way it can fail is a typed fault (awslambdaric's vocabulary), whose stack
holds the user's frames only: ``Runtime.HandlerNotFound`` (bad handler string,
no such attribute, not callable), ``Runtime.ImportModuleError`` (module missing,
or it raised while importing), ``Runtime.UserCodeSyntaxError`` (file and line).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import os
import sys
from collections.abc import Callable
from types import ModuleType, TracebackType

from edgefn.runtimes.faults import (
    HANDLER_NOT_FOUND,
    IMPORT_MODULE_ERROR,
    USER_CODE_SYNTAX_ERROR,
    Fault,
)

Handler = Callable[[object, dict[str, object]], object]

# What serving imports besides the standard library (top-level names): a codedir
# module of one of these names would be hidden by the runtime's own.
RUNTIME_PACKAGES = frozenset({"edgefn", "google", "grpc", "orjson", "typing_extensions"})

_MISSING = object()


def user_stack(tb: TracebackType | None, prefix: str) -> list[str]:
    """The frames of ``tb`` whose file is under ``prefix`` (the codedir with a trailing slash).

    Reads code objects only (no source files): it runs on every failed call.
    """
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename.startswith(prefix):
            frames.append(f'File "{code.co_filename[len(prefix):]}", line {tb.tb_lineno}, in {code.co_name}')
        tb = tb.tb_next
    return frames


def codedir_prefix(codedir: str) -> str:
    """The absolute, symlink-free codedir with a trailing separator, as user frames' files start."""
    return os.path.join(os.path.realpath(codedir), "")


def may_shadow(codedir: str) -> bool:
    """True when ``codedir`` holds a module named like one the runtime may import.

    ``--check`` loads the handler without importing what serving needs (asyncio,
    grpc): it imports them first anyway when a name could clash, so a check
    sees the handler as an instance would.
    """
    suffixes = tuple(importlib.machinery.all_suffixes())
    try:
        entries = os.scandir(codedir)
    except OSError:
        return False  # load_handler says what is wrong with it
    with entries:
        names = {entry.name.partition(".")[0] for entry in entries
                 if entry.is_dir() or entry.name.endswith(suffixes)}
    return not names.isdisjoint(sys.stdlib_module_names | RUNTIME_PACKAGES)


def is_async(handler: Handler) -> bool:
    """True for a handler whose calls may overlap: ``async def``, an async generator, or an async ``__call__``."""
    if inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler):
        return True
    method = getattr(handler, "__call__", None)  # an instance with an async __call__
    return not inspect.isfunction(handler) and (
        inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method))


def load_handler(handler: str, codedir: str) -> Handler:
    """Import ``handler`` ("module.attribute", module may be dotted) from ``codedir``; raise a Fault.

    Puts the codedir first on ``sys.path``: call it after the runtime's own
    imports are done, so the user's module names cannot shadow them.
    """
    module_name, _, attribute = handler.rpartition(".")
    if not module_name or not all(part.isidentifier() for part in handler.split(".")):
        raise Fault(HANDLER_NOT_FOUND, f"bad handler {handler!r}: expected module.attribute, e.g. index.handler")
    prefix = codedir_prefix(codedir)
    if not os.path.isdir(prefix):
        raise Fault(IMPORT_MODULE_ERROR, f"the codedir {codedir!r} is not a directory")
    _refuse_taken_name(module_name, prefix)
    sys.path.insert(0, prefix.rstrip(os.sep) or os.sep)
    module = _import(module_name, prefix)
    return _attribute(module, module_name, attribute)


def _refuse_taken_name(module_name: str, prefix: str) -> None:
    """A module the runtime already imported (json, typing...) would hide the user's own: say so."""
    top = module_name.partition(".")[0]
    taken = sys.modules.get(top)
    if taken is None or not (os.path.exists(f"{prefix}{top}.py") or os.path.isdir(f"{prefix}{top}")):
        return
    raise Fault(
        IMPORT_MODULE_ERROR,
        f"Unable to import module {module_name!r}: the name {top!r} is taken by {getattr(taken, '__file__', None) or top!r}, "
        "which the runtime itself uses; rename the module in the codedir",
    )


def _import(module_name: str, prefix: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        raise _syntax_fault(module_name, exc, prefix) from None
    except ModuleNotFoundError as exc:
        stack = user_stack(exc.__traceback__, prefix)
        raise Fault(IMPORT_MODULE_ERROR, f"Unable to import module {module_name!r}: {exc}", stack) from None
    except BaseException as exc:  # anything the module raised while importing, SystemExit too
        if isinstance(exc, KeyboardInterrupt):
            raise
        stack = user_stack(exc.__traceback__, prefix)
        message = f"Unable to import module {module_name!r}: {type(exc).__name__}: {exc}"
        raise Fault(IMPORT_MODULE_ERROR, message, stack) from None


def _syntax_fault(module_name: str, exc: SyntaxError, prefix: str) -> Fault:
    filename = exc.filename or "<unknown>"
    if filename.startswith(prefix):
        filename = filename[len(prefix) :]
    where = f'File "{filename}", line {exc.lineno}'
    stack = user_stack(exc.__traceback__, prefix) + [where]
    text = f": {exc.text.strip()}" if exc.text and exc.text.strip() else ""
    message = f"Syntax error in module {module_name!r}: {exc.msg} ({filename}, line {exc.lineno}){text}"
    return Fault(USER_CODE_SYNTAX_ERROR, message, stack)


def _attribute(module: ModuleType, module_name: str, attribute: str) -> Handler:
    found = getattr(module, attribute, _MISSING)
    if found is _MISSING:
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        seen = f"; its callables are: {', '.join(names[:10])}" if names else "; it defines no callables"
        raise Fault(HANDLER_NOT_FOUND, f"Handler {attribute!r} missing on module {module_name!r}{seen}")
    if not callable(found):
        raise Fault(
            HANDLER_NOT_FOUND,
            f"Handler {attribute!r} on module {module_name!r} is a {type(found).__name__}, not a function",
        )
    return found  # type: ignore[no-any-return]
