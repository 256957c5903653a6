"""Health probe for orchestrators: `python -m ocrmesh.platform.health_probe 127.0.0.1:50051`.

Exits 0 when the server (or `--service`) reports SERVING over grpc.health.v1, 1 otherwise.
It speaks TLS when the GRPC_TLS_* variables of the service it runs next to are set (so a
compose healthcheck needs no extra arguments), or when given `--tls-ca` and friends.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ocrmesh.platform.grpc_client import channel_credentials
from ocrmesh.platform.settings import GrpcTls


def check(target: str, service: str = "", timeout: float = 3.0, *, tls: GrpcTls | None = None) -> bool:
    """True when `target` answers SERVING for `service` within `timeout` seconds; over TLS
    (presenting a client certificate, if `tls` has one) when `tls` is enabled."""
    if tls is not None and tls.enabled:
        channel = grpc.secure_channel(target, channel_credentials(tls))
    else:
        channel = grpc.insecure_channel(target)
    with channel:
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
    parser.add_argument("--tls-cert", type=Path, help="client certificate (default: GRPC_TLS_CERT_FILE)")
    parser.add_argument("--tls-key", type=Path, help="client key (default: GRPC_TLS_KEY_FILE)")
    parser.add_argument(
        "--tls-ca", type=Path, help="CA of the server's certificate (default: GRPC_TLS_CA_FILE)"
    )
    args = parser.parse_args(argv)
    env = GrpcTls.from_env()
    tls = GrpcTls(
        cert_file=args.tls_cert or env.cert_file,
        key_file=args.tls_key or env.key_file,
        ca_file=args.tls_ca or env.ca_file,
    )
    ok = check(args.target, args.service, args.timeout, tls=tls)
    sys.stdout.write(("SERVING" if ok else "NOT_SERVING") + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
