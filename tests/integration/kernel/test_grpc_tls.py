"""TLS and mutual TLS between the services (issue 14, item 5): the kernel's server and
channel factories and the health probe, over real sockets with `make certs` certificates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from gateway.backends import health_check
from harness.certs import make_certs, tls_env, tls_of
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.platform.grpc_server import MeshServer, create_server
from ocrmesh.platform.health_probe import check
from ocrmesh.platform.settings import GrpcTls, GrpcTlsSettings


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A second, unrelated CA: its certificates look fine but nobody here trusts them.
    return make_certs(tmp_path_factory.mktemp("other-ca"), "client")


async def _server(tls: GrpcTls) -> tuple[MeshServer, str]:
    mesh, port = create_server([], host="127.0.0.1", tls=tls)
    await mesh.start()
    return mesh, f"127.0.0.1:{port}"


@pytest.fixture
async def mtls_server(certs: Path) -> AsyncIterator[str]:
    mesh, target = await _server(tls_of(certs, "auth"))
    try:
        yield target
    finally:
        await mesh.stop(0)


async def _health(target: str, tls: GrpcTls | None) -> str:
    async with create_channel(target, tls=tls, unary_timeout=3) as channel:
        try:
            reply = await health_check(channel)(health_pb2.HealthCheckRequest())
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_a_client_with_a_certificate_from_the_ca_is_served(mtls_server: str, certs: Path) -> None:
    assert await _health(mtls_server, tls_of(certs, "gateway")) == "SERVING"


async def test_a_client_without_a_certificate_is_refused(mtls_server: str, certs: Path) -> None:
    # TLS, trusting the server, but no certificate of its own: the handshake fails.
    no_cert = GrpcTls(ca_file=certs / "ca.pem")
    assert await _health(mtls_server, no_cert) == "UNAVAILABLE"


async def test_a_plaintext_client_is_refused(mtls_server: str) -> None:
    assert await _health(mtls_server, None) == "UNAVAILABLE"


async def test_a_certificate_from_another_ca_is_refused(
    mtls_server: str, certs: Path, other_ca: Path
) -> None:
    stranger = GrpcTls(other_ca / "client.pem", other_ca / "client.key", certs / "ca.pem")
    assert await _health(mtls_server, stranger) == "UNAVAILABLE"


async def test_a_client_refuses_a_server_its_ca_did_not_sign(certs: Path, other_ca: Path) -> None:
    mesh, target = await _server(GrpcTls(other_ca / "client.pem", other_ca / "client.key"))
    try:
        assert await _health(target, tls_of(certs, "gateway")) == "UNAVAILABLE"
    finally:
        await mesh.stop(0)


async def test_tls_without_a_ca_serves_any_client_that_trusts_the_server(certs: Path) -> None:
    mesh, target = await _server(GrpcTls(certs / "auth.pem", certs / "auth.key"))
    try:
        assert await _health(target, GrpcTls(ca_file=certs / "ca.pem")) == "SERVING"
        assert await _health(target, None) == "UNAVAILABLE"
    finally:
        await mesh.stop(0)


async def test_the_health_probe_speaks_mtls_from_the_environment(mtls_server: str, certs: Path) -> None:
    assert not await asyncio.to_thread(check, mtls_server, "", 2.0)
    assert await asyncio.to_thread(check, mtls_server, "", 2.0, tls=tls_of(certs, "auth"))

    def probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ocrmesh.platform.health_probe", mtls_server, "--timeout", "2"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**env, "PATH": "/usr/bin:/bin"},
        )

    # The compose healthcheck: the service's own GRPC_TLS_* variables, no arguments.
    done = await asyncio.to_thread(probe, tls_env(tls_of(certs, "auth")))
    assert (done.returncode, done.stdout.strip()) == (0, "SERVING"), done.stderr
    done = await asyncio.to_thread(probe, {})
    assert (done.returncode, done.stdout.strip()) == (1, "NOT_SERVING")


def test_tls_settings_need_a_certificate_and_its_key(
    certs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GRPC_TLS_CERT_FILE", str(certs / "auth.pem"))
    with pytest.raises(ValueError, match="go together"):
        GrpcTlsSettings()
    monkeypatch.setenv("GRPC_TLS_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(ValueError, match="not a readable file"):
        GrpcTlsSettings()
    monkeypatch.setenv("GRPC_TLS_KEY_FILE", str(certs / "auth.key"))
    monkeypatch.setenv("GRPC_TLS_CA_FILE", "")
    assert GrpcTlsSettings().grpc_tls == GrpcTls(certs / "auth.pem", certs / "auth.key", None)


async def test_a_server_needs_its_own_certificate_to_serve_tls(certs: Path) -> None:
    with pytest.raises(ValueError, match="GRPC_TLS_CERT_FILE"):
        create_server([], host="127.0.0.1", tls=GrpcTls(ca_file=certs / "ca.pem"))
