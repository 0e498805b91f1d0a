"""Loading a handler: every way it fails is a typed fault in the handshake, exit 3; odd layouts work."""

from __future__ import annotations

from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


async def failed_load(spawn, case: str, handler: str, *args: str) -> dict:
    runtime = await spawn(case, handler, args=args, expect_ready=False)
    assert await runtime.exit_code() == 3
    assert runtime.handshake["ready"] is False
    await runtime.stderr_line(str(runtime.handshake["errorType"]))  # a human line too
    return runtime.handshake


async def test_missing_attribute_is_handler_not_found_naming_what_exists(spawn) -> None:
    fault = await failed_load(spawn, "echo", "index.nosuch")
    assert fault["errorType"] == "Runtime.HandlerNotFound"
    assert "'nosuch'" in fault["errorMessage"] and "'index'" in fault["errorMessage"]
    assert "handler" in fault["errorMessage"].split("callables are:")[1]


async def test_attribute_that_is_not_callable_is_handler_not_found(spawn) -> None:
    fault = await failed_load(spawn, "not_callable", "index.handler")
    assert fault["errorType"] == "Runtime.HandlerNotFound"
    assert "is a str, not a function" in fault["errorMessage"]


@pytest.mark.parametrize("handler", ["index", "index.", ".handler", "index.hand-ler", "index..handler"])
async def test_bad_handler_string_is_handler_not_found(spawn, handler: str) -> None:
    fault = await failed_load(spawn, "echo", handler)
    assert fault["errorType"] == "Runtime.HandlerNotFound"
    assert "module.attribute" in fault["errorMessage"]


async def test_missing_module_is_import_module_error(spawn) -> None:
    fault = await failed_load(spawn, "echo", "nosuch.handler")
    assert fault == {
        "ready": False,
        "errorType": "Runtime.ImportModuleError",
        "errorMessage": "Unable to import module 'nosuch': No module named 'nosuch'",
        "errorStack": [],
    }


async def test_missing_dependency_is_import_module_error_at_the_import_line(spawn) -> None:
    fault = await failed_load(spawn, "import_error", "index.handler")
    assert fault["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'edgefn_test_no_such_module'" in fault["errorMessage"]
    assert fault["errorStack"] == ['File "index.py", line 3, in <module>']


async def test_module_raising_on_import_names_module_and_error(spawn) -> None:
    fault = await failed_load(spawn, "raises_on_import", "index.handler")
    assert fault["errorType"] == "Runtime.ImportModuleError"
    assert fault["errorMessage"] == "Unable to import module 'index': RuntimeError: config file missing"
    assert fault["errorStack"] == ['File "index.py", line 5, in <module>', 'File "index.py", line 2, in setup']


async def test_syntax_error_gives_file_and_line(spawn) -> None:
    fault = await failed_load(spawn, "syntax_error", "index.handler")
    assert fault["errorType"] == "Runtime.UserCodeSyntaxError"
    assert "(index.py, line 4)" in fault["errorMessage"]
    assert fault["errorStack"] == ['File "index.py", line 4']


async def test_module_name_taken_by_the_runtime_is_refused_with_advice(spawn) -> None:
    fault = await failed_load(spawn, "taken_name", "json.handler")
    assert fault["errorType"] == "Runtime.ImportModuleError"
    assert "rename" in fault["errorMessage"]


@pytest.mark.parametrize("mode", [(), ("--check",)])
async def test_a_check_refuses_a_name_only_serving_takes_as_serving_does(spawn, mode: tuple[str, ...]) -> None:
    # --check does not import what serving needs (asyncio, grpc), unless a codedir name could clash.
    fault = await failed_load(spawn, "taken_when_serving", "queue.handler", *mode)
    assert fault["errorType"] == "Runtime.ImportModuleError"
    assert "'queue' is taken" in fault["errorMessage"] and "rename" in fault["errorMessage"]


async def test_missing_codedir_is_import_module_error(spawn) -> None:
    fault = await failed_load(spawn, "echo", "index.handler", "--codedir", "/nonexistent/edgefn")
    assert fault["errorType"] == "Runtime.ImportModuleError"
    assert "/nonexistent/edgefn" in fault["errorMessage"]


async def test_check_mode_loads_reports_and_exits_0(spawn) -> None:
    runtime = await spawn("echo", "index.handler", args=["--check"])
    assert runtime.handshake["ready"] is True
    assert await runtime.exit_code() == 0


async def test_check_mode_reports_a_broken_handler_and_exits_3(spawn) -> None:
    fault = await failed_load(spawn, "syntax_error", "index.handler", "--check")
    assert fault["errorType"] == "Runtime.UserCodeSyntaxError"


async def test_codedir_flag_wins_over_env_and_works_from_another_directory(spawn) -> None:
    runtime = await spawn(
        "echo", "index.handler", args=["--codedir", str(FUNCTIONS / "vendored")],
        env={"EDGEFN_FUNCTION_CODEDIR": str(FUNCTIONS / "raises")},
    )
    assert (await runtime.call(b'"hi"')).Payload == b'"HI"'


async def test_codedir_from_env(spawn) -> None:
    runtime = await spawn("echo", "index.handler", env={"EDGEFN_FUNCTION_CODEDIR": str(FUNCTIONS / "vendored")})
    assert (await runtime.call(b'"hi"')).Payload == b'"HI"'


async def test_own_modules_named_manager_runtimes_and_proto_import(spawn) -> None:
    runtime = await spawn("shadow_names")
    assert (await runtime.call()).Payload == b'["my manager","my proto","my runtimes"]'


async def test_dotted_package_handler_with_relative_imports(spawn) -> None:
    runtime = await spawn("dotted_package", "pkg.mod.handler")
    assert (await runtime.call(b'{"name": "ada"}')).Payload == b'"hello ada"'


async def test_vendored_package_in_codedir_imports(spawn) -> None:
    runtime = await spawn("vendored")
    assert (await runtime.call(b'"hi"')).Payload == b'"HI"'


async def test_module_printing_while_importing_does_not_break_the_handshake(spawn) -> None:
    runtime = await spawn("prints_on_import")
    await runtime.stderr_line("importing index")
    assert (await runtime.call()).Payload == b'"ok"'
