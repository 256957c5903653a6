"""What the database-outage tests share (auth_svc's own, and the gateway's readiness): the
real PostgreSQL behind a TCP proxy the test cuts and restores, gRPC health as a caller asks
it, the probes deploy/k8s gives auth_svc, and a clock for "within N seconds"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from harness.repo import ROOT
from harness.tcp_proxy import TcpProxy
from ocrmesh.auth.v1 import auth_pb2

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
AUTH_MANIFEST = ROOT / "deploy" / "k8s" / "base" / "auth-svc.yaml"
# Generous: these bound a wait on a loaded machine; the measured times are logged.
SEEN_WITHIN = 15.0
# The target: answers again within 10 s of PostgreSQL accepting connections.
RECOVERED_WITHIN = 10.0


@contextmanager
def proxied_database(database_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy to `database_url`'s server, and the URL that goes through it."""
    url = make_url(database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


async def health_status(channel: grpc.aio.Channel, service: str) -> str:
    """What gRPC health answers for `service` ("" is the server), or the call's error code."""
    stub: Any = health_pb2_grpc.HealthStub(channel)  # the published stub declares no methods
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
    except grpc.aio.AioRpcError as exc:
        return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def seconds_until(
    condition: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    *,
    since: float | None = None,
    every: float = 0.1,
) -> float:
    """Seconds from `since` (default: now) until `condition()` holds; fails past `timeout`."""
    start = time.monotonic() if since is None else since
    while not await condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not {what} within {timeout} s")
        await asyncio.sleep(every)
    return time.monotonic() - start


def auth_probe_services() -> dict[str, str]:
    """The gRPC health service each of auth-svc's probes asks, by probe kind."""
    documents = [doc for doc in yaml.safe_load_all(AUTH_MANIFEST.read_text()) if doc]
    (deployment,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {
        kind: container[kind]["grpc"].get("service", "")
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
