"""The committed stubs are exactly what grpcio-tools generates from proto/function.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUBS = ("function_pb2.py", "function_pb2.pyi", "function_pb2_grpc.py")


@pytest.mark.timeout(60)
def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    # The virtual path makes protoc write edgefn/wire/… and import "from edgefn.wire import …".
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-Iedgefn/wire={ROOT / 'proto'}",
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         str(ROOT / "proto" / "function.proto")],
        check=True, cwd=ROOT, capture_output=True,
    )
    for name in STUBS:
        generated = (tmp_path / "edgefn" / "wire" / name).read_text()
        committed = (ROOT / "edgefn" / "wire" / name).read_text()
        assert generated == committed, f"edgefn/wire/{name} drifted from proto/function.proto: regenerate it"


def test_wire_keeps_baetyl_field_numbers() -> None:
    from edgefn.wire import function_pb2

    fields = {f.name: (f.number, f.type) for f in function_pb2.FunctionMessage.DESCRIPTOR.fields}
    assert fields["ID"][0] == 1 and fields["QOS"][0] == 2 and fields["Topic"][0] == 3
    assert fields["Payload"][0] == 4 and fields["FunctionName"][0] == 11 and fields["FunctionInvokeID"][0] == 12
    assert fields["Timestamp"] == (10, function_pb2.FunctionMessage.DESCRIPTOR.fields_by_name["Timestamp"].TYPE_SINT64)
    service = function_pb2.DESCRIPTOR.services_by_name["Function"]
    assert service.full_name == "baetyl.Function"
    assert "Call" in service.methods_by_name
