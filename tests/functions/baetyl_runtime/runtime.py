"""A Baetyl v1-style Python runtime, written for edgefn's tests.

It follows Baetyl's conventions, not edgefn's: the functions come from its own
config file (``-c service.yml``: ``functions: [{name, handler, codedir}]``),
the address and instance name from ``BAETYL_SERVICE_INSTANCE_ADDRESS`` and
``BAETYL_SERVICE_INSTANCE_NAME``; it writes no handshake line, serves ``Call``
only (a thread-pool gRPC server), answers an unknown FunctionName with
"function not found", and wraps a handler's exception as Baetyl does:
``Exception("[UserCodeInvoke] ", err)``, which gRPC sends as plain text.
"""

import argparse
import importlib
import json
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
import yaml

from edgefn.wire import function_pb2_grpc


class Runtime(function_pb2_grpc.FunctionServicer):
    def __init__(self, config):
        self.functions = {}
        for function in config["functions"]:
            sys.path.append(function["codedir"])
            module_name, _, attribute = function["handler"].rpartition(".")
            self.functions[function["name"]] = getattr(importlib.import_module(module_name), attribute)

    def Call(self, request, context):
        if request.FunctionName not in self.functions:
            raise Exception("function not found")
        ctx = {"messageQOS": request.QOS, "messageTopic": request.Topic, "messageTimestamp": request.Timestamp,
               "functionName": request.FunctionName, "functionInvokeID": request.FunctionInvokeID,
               "instanceName": os.environ.get("BAETYL_SERVICE_INSTANCE_NAME", "")}
        msg = {}
        if request.Payload:
            try:
                msg = json.loads(request.Payload)
            except BaseException:
                msg = request.Payload
        try:
            msg = self.functions[request.FunctionName](msg, ctx)
        except BaseException as err:
            raise Exception("[UserCodeInvoke] ", err)
        request.Payload = b"" if msg is None else msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        return request


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-c", default=os.path.join("etc", "baetyl", "service.yml"))
    args = parser.parse_args()
    with open(args.c) as file:
        config = yaml.safe_load(file)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    function_pb2_grpc.add_FunctionServicer_to_server(Runtime(config), server)
    server.add_insecure_port(os.environ["BAETYL_SERVICE_INSTANCE_ADDRESS"])
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(5).wait()


if __name__ == "__main__":
    main()
