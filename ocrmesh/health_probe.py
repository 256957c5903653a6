"""Health probe for orchestrators: `python -m ocrmesh.health_probe 127.0.0.1:50051`.

Exits 0 when the server (or `--service`) reports SERVING over grpc.health.v1, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, service: str = "", timeout: float = 3.0) -> bool:
    """True when `target` answers SERVING for `service` within `timeout` seconds."""
    with grpc.insecure_channel(target) as channel:
        # grpc_health's stubs declare no methods on HealthStub.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of the gRPC server")
    parser.add_argument("--service", default="", help="service name (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    ok = check(args.target, args.service, args.timeout)
    sys.stdout.write(("SERVING" if ok else "NOT_SERVING") + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
