"""Generated gRPC stubs for proto/function.proto: regenerate with scripts/protoc."""
