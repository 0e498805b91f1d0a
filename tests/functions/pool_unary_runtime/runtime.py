"""A Baetyl-style custom runtime: serves only unary ``Call`` (no Talk) on EDGEFN_INSTANCE_ADDRESS.

Payload ``crash`` exits at once, ``hang`` never answers, anything else is echoed.
"""

import json
import os
import sys
import time
from concurrent import futures

import grpc

from edgefn.wire import function_pb2, function_pb2_grpc


class Function(function_pb2_grpc.FunctionServicer):
    def Call(self, request, context):
        if request.Payload == b"crash":
            os._exit(6)
        if request.Payload == b"hang":
            time.sleep(3600)
        return function_pb2.FunctionMessage(ID=request.ID, Payload=request.Payload)


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
function_pb2_grpc.add_FunctionServicer_to_server(Function(), server)
server.add_insecure_port(os.environ["EDGEFN_INSTANCE_ADDRESS"])
server.start()
sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid(), "methods": ["Call"]}) + "\n")
sys.stdout.flush()
server.wait_for_termination()
