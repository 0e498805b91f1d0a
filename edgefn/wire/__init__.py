"""Generated gRPC stubs for proto/function.proto (regenerate with tests/test_wire.py's command)."""
