"""The whole mesh with mutual TLS between every gRPC party (issue 14, item 5): the same
user journey as test_user_journey over REST, while gRPC without a client certificate is
refused, and auth_svc and ocr_svc listen on the loopback address only (their default)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from harness.certs import make_certs, tls_env, tls_of
from harness.cli import cli_env, ocrmesh
from harness.images import SAMPLE_PARAGRAPH, character_error_rate, sample_multiline_png
from harness.mesh import Mesh, running_mesh
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata, channel_credentials
from ocrmesh.platform.health_probe import check
from ocrmesh.platform.settings import GrpcTls
from tests.e2e.conftest import SignedUpUser, sign_up

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def mtls_mesh(
    tmp_path_factory: pytest.TempPathFactory, certs: Path, postgres_admin_url: str, rabbitmq_url: str
) -> Iterator[Mesh]:
    # One certificate for every process (running_mesh gives them all one environment); it is
    # valid for 127.0.0.1 as a server and as a client, like each `make certs` certificate.
    env = tls_env(tls_of(certs, "auth"))
    with running_mesh(
        tmp_path_factory.mktemp("mtls-mesh"),
        postgres_admin_url=postgres_admin_url,
        rabbitmq_url=rabbitmq_url,
        extra_env=env,
    ) as running:
        yield running


def test_the_user_journey_passes_with_mutual_tls(mtls_mesh: Mesh, certs: Path) -> None:
    with httpx.Client(base_url=mtls_mesh.gateway_url, timeout=60) as client:
        # Ready over mTLS (the first handshakes may outlast /readyz's 1 s on a busy machine).
        deadline = time.monotonic() + 30
        while (ready := client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.5)
        user = sign_up(client, mtls_mesh.mail_dir)
        me = client.get("/auth/me", headers=user.auth)
        assert me.status_code == 200, me.text
        files = {"file": ("page.png", sample_multiline_png(), "image/png")}
        ocr = client.post("/ocr", headers=user.auth, files=files)
        assert ocr.status_code == 200, ocr.text
        assert ocr.json()["lines"]
    # An internal caller with a certificate from the mesh's CA gets through.
    credentials = channel_credentials(tls_of(certs, "client"))
    with grpc.secure_channel(mtls_mesh.auth_addr, credentials) as channel:
        reply = auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(user.token), timeout=5
        )
    assert reply.user.email == user.email


@pytest.mark.parametrize("service", ["auth", "ocr"])
def test_grpc_without_a_client_certificate_is_refused(mtls_mesh: Mesh, certs: Path, service: str) -> None:
    target = mtls_mesh.auth_addr if service == "auth" else mtls_mesh.ocr_addr
    assert check(target, timeout=3, tls=tls_of(certs, "client"))
    assert not check(target, timeout=3, tls=GrpcTls(ca_file=certs / "ca.pem"))
    assert not check(target, timeout=3)  # plaintext
    with grpc.secure_channel(target, channel_credentials(GrpcTls(ca_file=certs / "ca.pem"))) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=3)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", ["auth", "ocr"])
def test_grpc_services_listen_on_the_loopback_address_only_by_default(mtls_mesh: Mesh, service: str) -> None:
    port = int((mtls_mesh.auth_addr if service == "auth" else mtls_mesh.ocr_addr).rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    # 127.0.0.2 is this machine too: a wildcard bind ("[::]", the old default) would answer there.
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.2", port), timeout=2):
        pass


def test_the_cli_reads_a_page_from_ocr_svc_with_a_mesh_certificate_and_not_without(
    mtls_mesh: Mesh, certs: Path, tmp_path: Path
) -> None:
    with httpx.Client(base_url=mtls_mesh.gateway_url, timeout=60) as client:
        user: SignedUpUser = sign_up(client, mtls_mesh.mail_dir)
    env = cli_env(tmp_path, mtls_mesh.gateway_url)
    login = ocrmesh(env, "login", user.email, "--password-stdin", stdin=user.password + "\n")
    assert login.returncode == 0, login.stderr
    page = tmp_path / "page.png"
    page.write_bytes(sample_multiline_png())
    direct = ("ocr", "--grpc", "--ocr-addr", mtls_mesh.ocr_addr, "--text", str(page))

    # An internal caller: the GRPC_TLS_* variables every mesh client reads.
    done = ocrmesh({**env, **tls_env(tls_of(certs, "client"))}, *direct)
    assert done.returncode == 0, done.stderr
    assert character_error_rate("\n".join(SAMPLE_PARAGRAPH), done.stdout.strip()) <= 0.05

    # Without a certificate the handshake fails: "unavailable" (5), a line, no traceback.
    refused = ocrmesh({**env, "GRPC_TLS_CA_FILE": str(certs / "ca.pem")}, *direct, timeout=120)
    assert refused.returncode == 5, (refused.stdout, refused.stderr)
    assert "Traceback" not in refused.stderr
