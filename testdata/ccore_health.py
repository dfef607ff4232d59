# A grpc.health.v1.Health Check server on gRPC's C core (Debian's
# python3-grpcio), for e2e_grpc_ccore_test.go. It answers every Check with
# SERVING, written as protobuf bytes by hand (field 1, varint 1), and
# prints its port once it listens. The C core rejects any request without
# "te: trailers" itself, before the handler runs.
import sys
from concurrent import futures

import grpc


def check(request, context):
    return b"\x08\x01"


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "grpc.health.v1.Health",
    {"Check": grpc.unary_unary_rpc_method_handler(check)},
),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()  # until the test closes stdin
server.stop(0)
