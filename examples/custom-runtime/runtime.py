"""A custom edgefn runtime in about fifty lines: serves ``baetyl.Function`` and shouts.

The whole contract (docs/runtimes.md): serve ``baetyl.Function/Call`` on the
address in ``EDGEFN_INSTANCE_ADDRESS`` (``BAETYL_SERVICE_INSTANCE_ADDRESS`` holds
the same), answer each FunctionMessage with the result in ``Payload``, fail with
a gRPC status whose details are JSON ``{errorType, errorMessage, errorStack}``,
and exit on SIGTERM. Serving gRPC health is optional: edgefn uses it to know
when the runtime is ready (else it waits until the address accepts a connection).

Any language with gRPC does the same; this one uses Python's grpcio and the
stubs edgefn ships (``edgefn.wire``), so it runs with the venv's Python.
"""

import json
import os
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edgefn.wire import function_pb2_grpc


class Shout(function_pb2_grpc.FunctionServicer):
    """Upper-cases the event's text: a string, or the "text" field of an object."""

    def Call(self, request, context):
        event = json.loads(request.Payload or b"{}")
        text = event if isinstance(event, str) else event.get("text") if isinstance(event, dict) else None
        if not isinstance(text, str):
            error = {"errorType": "ValueError", "errorMessage": "expected a string or {\"text\": ...}",
                     "errorStack": []}
            context.abort(grpc.StatusCode.UNKNOWN, json.dumps(error))
        request.Payload = json.dumps({"shout": text.upper() + "!", "function": request.FunctionName}).encode()
        return request


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    function_pb2_grpc.add_FunctionServicer_to_server(Shout(), server)
    ready = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(ready, server)
    server.add_insecure_port(os.environ["EDGEFN_INSTANCE_ADDRESS"])
    server.start()
    ready.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=5).wait()  # calls in flight finish


if __name__ == "__main__":
    main()
