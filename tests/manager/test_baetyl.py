"""``edgefn import-baetyl``: Baetyl v1 deployments become one edgefn config, with every loss noted.

The deployments are files under ``tests/baetyl/<case>/`` shaped like the examples
of Baetyl v1's docs; the mapping functions are also tested on plain mappings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgefn.manager.baetyl import (
    BaetylError, import_deployment, map_hub, map_instance, map_rules, runtime_of,
)
from edgefn.manager.baetyl_deployment import Report, Verbatim, dump, read_yaml
from edgefn.manager.config import load_config

pytestmark = pytest.mark.timeout(60)

CASES = Path(__file__).resolve().parent.parent / "baetyl"


def edgefn(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgefn", *args], capture_output=True, text=True,
                          timeout=50, stdin=subprocess.DEVNULL, cwd=cwd)


def imported(tmp_path: Path, source: Path) -> tuple[Path, dict, list[str]]:
    """Run the real command into ``tmp_path/edgefn.yml``: the file, its document, the report's lines."""
    out = tmp_path / "edgefn.yml"
    done = edgefn("import-baetyl", str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out, yaml.safe_load(out.read_text()), done.stderr.splitlines()


def notes(lines: list[str], file: str, key: str) -> list[str]:
    """The report's lines about ``key`` of the Baetyl file ending in ``file``."""
    return [line for line in lines if f"{file}: {key}: " in line]


# -- whole deployments, through the real command --------------------------------------------


def test_sayhi_example_becomes_a_config_that_loads_and_checks(tmp_path: Path) -> None:
    out, config, _ = imported(tmp_path, CASES / "sayhi")
    loaded = load_config(out)
    assert [(f.name, f.runtime, f.handler) for f in loaded.functions] == [
        ("python27-sayhi", "python", "index.handler"),
        ("sql-filter", "sql", "select qos() as qos, topic() as topic, * where id < 10"),
        ("python36-sayhi", "python", "index.handler"),
        ("node85-sayhi", "node", "index.handler"),
    ]
    assert loaded.function("python27-sayhi").codedir == CASES / "sayhi" / "function-sayhi-code"
    # node85's container path var/db/baetyl/function-sayhi is its own volume, function-sayjs-code
    assert loaded.function("node85-sayhi").codedir == CASES / "sayhi" / "function-sayjs-code"
    assert loaded.function("python27-sayhi").instance.max == 10
    assert [(r.clientid, r.subscribe.topic, r.function, r.publish.topic, r.publish.qos) for r in loaded.rules][:2] == [
        ("func-python27-sayhi-1", "t", "python27-sayhi", "t/py2hi", 0),
        ("func-sql-filter-1", "t", "sql-filter", "t/sqlfilter", 1),
    ]
    assert list(config) == ["hub", "rules", "functions", "logger"]
    # edgefn's spellings, not Baetyl's image names: node85 is written as node, python27 as python
    assert [function["runtime"] for function in config["functions"]] == ["python", "sql", "python", "node"]
    assert list(config["functions"][0]) == ["name", "runtime", "handler", "codedir", "instance"]
    assert config["hub"] == {"address": "tcp://localhub:1883", "username": "test", "password": "hahaha"}
    assert loaded.warnings == ()
    done = edgefn("check", str(out))
    assert done.returncode == 0, done.stderr
    assert "ok (4 functions, 4 rules)" in done.stdout


def test_sayhi_example_reports_the_hub_host_images_and_what_stays_behind(tmp_path: Path) -> None:
    _, _, lines = imported(tmp_path, CASES / "sayhi")
    manager, application = "function-manager-conf/service.yml", "sayhi/application.yml"
    assert "names the Baetyl service 'localhub'" in notes(lines, manager, "hub.address")[0]
    assert "port Python 2.7 code to Python 3" in notes(lines, application, "services[2].image")[0]
    assert "runtime: node" in notes(lines, application, "services[4].image")[0]
    assert "runtime: sql" in notes(lines, application, "services[5].image")[0]
    hub = notes(lines, application, "services[0]")[0]
    assert "'localhub'" in hub and "not carried" in hub and "1883:1883" in hub
    assert "edgefn is the function manager" in notes(lines, application, "services[1].image")[0]
    # the manager's log folder is a volume not on this machine: its logger.path is dropped, both noted
    assert "function-manager-log" in notes(lines, application, "volumes[5].path")[0]
    assert "dropped" in notes(lines, manager, "logger.path")[0]
    assert lines[-1] == f"edgefn import-baetyl: wrote {tmp_path / 'edgefn.yml'}: 4 functions, 4 rules; 9 notes"


def test_codedir_is_written_relative_to_the_output_file(tmp_path: Path) -> None:
    out, config, _ = imported(tmp_path, CASES / "sayhi")
    codedir = config["functions"][0]["codedir"]
    assert not Path(codedir).is_absolute()
    assert (out.parent / codedir).resolve() == CASES / "sayhi" / "function-sayhi-code"


def test_python3_example_in_baetyls_work_dir_moves_function_level_keys_under_instance(tmp_path: Path) -> None:
    source = CASES / "python3" / "var" / "db" / "baetyl" / "application.yml"
    out, config, lines = imported(tmp_path, source)
    function = config["functions"][0]
    assert function["instance"] == {"min": 0, "max": 10, "idletime": "1m", "timeout": "10s", "memory": "256m",
                                    "message": {"length": {"max": "1m"}}, "backoff": {"max": "30s"}}
    loaded = load_config(out)
    sayhi3 = loaded.function("sayhi3")
    assert "COUNTRY: NO" in out.read_text() and sayhi3.env == {"GREETING": "hi", "COUNTRY": "NO"}
    assert (sayhi3.instance.timeout, sayhi3.instance.message_max, sayhi3.instance.backoff_max) == (10.0, 1 << 20, 30.0)
    assert sayhi3.instance.memory == 256 << 20
    assert sayhi3.codedir == source.parent / "function-sayhi-code"
    manager = "function-manager-conf/service.yml"
    for key in ("message", "backoff", "timeout"):
        assert notes(lines, manager, f"functions[0].{key}")[0].endswith(f"moved to instance.{key}")
    for key in ("timeout", "validatesubs", "buffersize"):
        assert "dropped" in notes(lines, manager, f"hub.{key}")[0]
    assert "instance.memory" in notes(lines, "application.yml", "services[2].resources.memory.limit")[0]
    assert "not carried" in notes(lines, "application.yml", "services[2].resources.cpu")[0]
    done = edgefn("check", str(out))
    assert done.returncode == 0, done.stderr


def test_custom_image_becomes_runtime_custom_with_a_command_to_fill_in(tmp_path: Path) -> None:
    config, found = import_deployment(CASES / "custom", tmp_path)
    go, detect = config["functions"]
    assert go["runtime"] == "custom" and go["handler"] == "sayhi"
    assert go["command"] == ["TODO: the command that serves this function "
                             "(Baetyl image registry.example.com/acme/baetyl-function-go:1.2)"]
    assert (tmp_path / go["codedir"]).resolve() == CASES / "custom" / "function-go-code"
    assert detect["runtime"] == "python" and detect["instance"] == {"max": "2", "timeout": "20s"}  # scalars as written
    lines = [str(note) for note in found]
    assert "runtime: custom" in notes(lines, "function-manager-conf/service.yml", "functions[0]")[0]
    assert "bundled opencv41" in notes(lines, "application.yml", "services[2].image")[0]
    assert "instance.timeout is set too" in notes(lines, "function-manager-conf/service.yml", "functions[1].timeout")[0]
    assert "edgefn gives each instance its own address" in notes(lines, "function-go-conf/service.yml", "server")[0]


def test_a_function_whose_service_is_missing_is_dropped_with_its_rules(tmp_path: Path) -> None:
    config, found = import_deployment(CASES / "custom", tmp_path)
    lines = [str(note) for note in found]
    assert [rule["function"]["name"] for rule in config["rules"]] == ["go-sayhi", "detect"]
    assert "no service named 'function-ghost'" in notes(lines, "function-manager-conf/service.yml", "functions[2]")[0]
    assert "'ghost' could not be carried" in notes(lines, "function-manager-conf/service.yml", "rules[2]")[0]


def test_a_deployment_without_function_manager_exits_1_and_says_so(tmp_path: Path) -> None:
    done = edgefn("import-baetyl", str(CASES / "no-manager"), "-o", str(tmp_path / "edgefn.yml"))
    assert done.returncode == 1
    assert "no function manager" in done.stderr and "localhub" in done.stderr
    assert not (tmp_path / "edgefn.yml").exists()


def test_an_unreadable_input_exits_1_and_usage_errors_exit_2(tmp_path: Path) -> None:
    done = edgefn("import-baetyl", str(tmp_path / "nowhere"))
    assert done.returncode == 1 and "cannot read" in done.stderr
    (tmp_path / "application.yml").write_text("services: [\n")
    done = edgefn("import-baetyl", str(tmp_path))
    assert done.returncode == 1 and "not valid YAML" in done.stderr
    assert edgefn("import-baetyl").returncode == 2


def test_without_o_the_config_goes_to_stdout_with_paths_relative_to_the_current_folder() -> None:
    done = edgefn("import-baetyl", "baetyl/sayhi", cwd=CASES.parent)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["functions"][0]["codedir"] == "baetyl/sayhi/function-sayhi-code"
    assert "wrote stdout" in done.stderr


def test_a_missing_code_volume_drops_the_function_and_names_the_volume(tmp_path: Path) -> None:
    for name in ("application.yml", "function-manager-conf/service.yml", "function-sayhi-conf/service.yml"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((CASES / "python3/var/db/baetyl" / name).read_text())
    with pytest.raises(BaetylError, match="no function could be carried") as raised:
        import_deployment(tmp_path, tmp_path)
    lines = [str(note) for note in raised.value.notes]
    assert any("volumes[6].path" in line and "'function-sayhi-code'" in line for line in lines)
    assert any("functions[0].codedir" in line for line in lines)


# -- the mapping, on plain mappings -----------------------------------------------------------


@pytest.mark.parametrize(("image", "runtime"), [
    ("baetyl-function-python27", "python"),
    ("baetyl-function-python36", "python"),
    ("baetyl-function-python3", "python"),
    ("baetyl-function-python36-opencv41", "python"),
    ("baetyl-function-node85", "node"),
    ("baetyl-function-node10", "node"),
    ("baetyl-function-sql", "sql"),
    ("baetyl-function-go", "custom"),
    ("my-runtime", "custom"),
])
def test_runtime_images_map_to_edgefn_runtimes(image: str, runtime: str) -> None:
    assert runtime_of(image)[0] == runtime


def collect() -> tuple[list[tuple[str, str]], Report]:
    """A list of (key, message) notes, and the function that appends to it."""
    found: list[tuple[str, str]] = []
    return found, lambda key, message: found.append((key, message))


def test_function_level_message_backoff_timeout_move_under_instance() -> None:
    found, note = collect()
    function = {"name": "f", "service": "s", "instance": {"min": 1, "max": 3},
                "message": {"length": {"max": "8m"}}, "backoff": {"max": "2m"}, "timeout": "5s"}
    instance = map_instance(function, "python", note, "functions[0]")
    assert instance == {"min": 1, "max": 3, "timeout": "5s", "message": {"length": {"max": "8m"}},
                        "backoff": {"max": "2m"}}
    assert [key for key, _ in found] == ["functions[0].message", "functions[0].backoff", "functions[0].timeout"]


def test_sql_functions_keep_only_the_message_limit() -> None:
    found, note = collect()
    function = {"instance": {"max": 3}, "message": {"length": {"max": "1m"}}, "timeout": "5s"}
    assert map_instance(function, "sql", note, "functions[1]") == {"message": {"length": {"max": "1m"}}}
    dropped = [key for key, message in found if "SQL functions run in the manager" in message]
    assert sorted(dropped) == ["functions[1].instance.max", "functions[1].timeout"]


def test_instance_memory_limit_becomes_memory_and_cpu_is_noted() -> None:
    found, note = collect()
    function = {"instance": {"memory": {"limit": "100m", "swap": "1g"}, "cpu": {"cpus": 1}}}
    assert map_instance(function, "node", note, "functions[0]") == {"memory": "100m"}
    assert {key for key, _ in found} == {"functions[0].instance.memory.limit", "functions[0].instance.memory.swap",
                                         "functions[0].instance.cpu"}


def test_hub_keeps_edgefn_keys_in_order_and_drops_baetyl_only_ones() -> None:
    found, note = collect()
    hub = {"clientid": "c", "address": "tcp://localhub:1883", "keepalive": "-1", "timeout": "30s",
           "validatesubs": "true", "buffersize": "10", "password": "p"}
    out = map_hub(hub, note, frozenset({"localhub"}), lambda inside: None)
    assert list(out.items()) == [("address", "tcp://localhub:1883"), ("password", "p"), ("clientid", "c"),
                                 ("keepalive", "-1")]
    assert [key for key, _ in found] == ["hub.timeout", "hub.validatesubs", "hub.buffersize", "hub.address"]


def test_a_hub_host_that_is_not_a_baetyl_service_is_not_noted() -> None:
    found, note = collect()
    map_hub({"address": "ssl://broker.example.com:8883"}, note, frozenset({"localhub"}), lambda inside: None)
    assert found == []


def test_hub_tls_files_are_mapped_to_the_host_or_kept_and_noted() -> None:
    found, note = collect()
    hub = {"address": "ssl://b:8883", "ca": "var/db/baetyl/cert/ca.pem", "cert": "/elsewhere/c.pem"}
    host = {"var/db/baetyl/cert/ca.pem": "certs/ca.pem"}
    out = map_hub(hub, note, frozenset(), host.get)
    assert (out["ca"], out["cert"]) == ("certs/ca.pem", "/elsewhere/c.pem")
    assert [key for key, _ in found] == ["hub.cert"]


def test_rules_of_functions_not_carried_are_dropped_and_unknown_keys_noted() -> None:
    found, note = collect()
    rules = [{"clientid": "a", "subscribe": {"topic": "t"}, "function": {"name": "f"}, "publish": {"topic": "o"},
              "extra": 1},
             {"subscribe": {"topic": "t"}, "function": {"name": "gone"}, "publish": {"topic": "o"}}]
    out = map_rules(rules, note, {"f"})
    assert out == [{"clientid": "a", "subscribe": {"topic": "t"}, "function": {"name": "f"}, "publish": {"topic": "o"}}]
    assert [key for key, _ in found] == ["rules[0].extra", "rules[1]"]


def test_plain_scalars_are_written_back_as_they_were_read(tmp_path: Path) -> None:
    source = tmp_path / "service.yml"
    source.write_text("password: 0123\ncountry: NO\nquoted: 'yes'\nqos: 1\nempty:\nsize: 4m\n")
    document = read_yaml(source)
    assert isinstance(document["password"], Verbatim)
    assert dump(document).splitlines() == ["password: 0123", "", "country: NO", "", "quoted: 'yes'", "", "qos: 1", "",
                                           "empty: null", "", "size: 4m"]


def test_dollars_are_escaped_so_edgefn_reads_the_text_as_baetyl_did(tmp_path: Path) -> None:
    path = tmp_path / "edgefn.yml"
    path.write_text(dump({
        "hub": {"password": Verbatim("a${B}c$$")},
        "functions": [{"name": "f", "runtime": "sql", "handler": "select * where topic() = '$SYS/x'"}],
    }))
    assert "'$SYS/x'" in path.read_text()  # a lone $ needs no escape and gets none
    config = load_config(path, environ={})
    assert config.hub.password == "a${B}c$$"
    assert config.functions[0].handler == "select * where topic() = '$SYS/x'"
