"""`ocrmesh ocr --grpc` as a subprocess against the test OcrService on a real in-process
gRPC server (port 0): mutual TLS from the GRPC_TLS_* variables, the token as bearer
metadata, and each way a call can fail mapped to its exit code."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.certs import make_certs, tls_env, tls_of
from ocrmesh.ocr.v1 import ocr_pb2_grpc
from ocrmesh.platform.grpc_server import HostedService, MeshServer, create_server
from ocrmesh.platform.settings import GrpcTls
from ocrmesh_cli.config import SavedLogin, TokenStore
from tests.integration.gateway.fakes import OCR_SERVICE, FakeOcr

pytestmark = pytest.mark.integration

OCRMESH = Path(sys.executable).with_name("ocrmesh")
TOKEN = "a.token.from-login"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@dataclass
class Served:
    ocr: FakeOcr
    server: MeshServer
    addr: str


async def serve(tls: GrpcTls | None) -> Served:
    ocr = FakeOcr()
    server, port = create_server(
        [HostedService.of(ocr, ocr_pb2_grpc.add_OcrServiceServicer_to_server, OCR_SERVICE)], tls=tls
    )
    await server.start()
    return Served(ocr, server, f"127.0.0.1:{port}")


@pytest.fixture
async def plain() -> AsyncIterator[Served]:
    served = await serve(None)
    yield served
    await served.server.stop(0)


@pytest.fixture
async def mtls(certs: Path) -> AsyncIterator[Served]:
    served = await serve(tls_of(certs, "ocr"))
    yield served
    await served.server.stop(0)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRPC_TLS_", "OCR_", "OCRMESH_"))}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    TokenStore(tmp_path / "config" / "ocrmesh").save(
        SavedLogin(
            url="http://127.0.0.1:8000",
            email="ada@example.com",
            access_token=TOKEN,
            expires_at=time.time() + 600,
        )
    )
    return env


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "page.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n the test servicer does not read it")
    return path


async def ocrmesh(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    # A subprocess, while this event loop keeps serving the in-process server.
    process = await asyncio.create_subprocess_exec(
        str(OCRMESH), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_grpc_over_mutual_tls_streams_the_lines_with_the_token_as_bearer_metadata(
    mtls: Served, env: dict[str, str], certs: Path, page: Path
) -> None:
    code, out, err = await ocrmesh(
        {**env, **tls_env(tls_of(certs, "client"))},
        "ocr",
        "--grpc",
        "--ocr-addr",
        mtls.addr,
        "--text",
        str(page),
    )
    assert (code, out, err) == (0, "Hello\nworld\n", "")
    [metadata] = mtls.ocr.seen_metadata
    assert metadata["authorization"] == f"Bearer {TOKEN}"
    assert mtls.ocr.requests[0].filename == "page.png"  # the name, never the local path


async def test_grpc_without_the_tls_variables_cannot_reach_a_tls_server_and_exits_5(
    mtls: Served, env: dict[str, str], page: Path
) -> None:
    code, out, err = await ocrmesh(env, "ocr", "--grpc", "--ocr-addr", mtls.addr, str(page))
    assert (code, out) == (5, "")
    assert err.startswith(f"ocrmesh: {page}: cannot reach ocr_svc at {mtls.addr}")
    assert mtls.ocr.requests == []


async def test_a_tls_file_that_does_not_exist_is_a_usage_error(
    plain: Served, env: dict[str, str], page: Path
) -> None:
    code, _, err = await ocrmesh(
        {**env, "GRPC_TLS_CA_FILE": "/nonexistent/ca.pem"},
        "ocr",
        "--grpc",
        "--ocr-addr",
        plain.addr,
        str(page),
    )
    assert code == 2
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("mode", "exit_code", "stdout"),
    [
        ("invalid", 4, ""),  # INVALID_ARGUMENT: the image is refused
        ("busy", 5, ""),  # RESOURCE_EXHAUSTED without a retry-after: not asked again
        ("fail_mid", 1, "Hello\n"),  # INTERNAL after a line: the line stays printed
        ("no_completion", 1, ""),  # a stream that ends without `completed`
    ],
)
async def test_each_failure_of_the_call_has_its_exit_code(
    plain: Served, env: dict[str, str], page: Path, mode: str, exit_code: int, stdout: str
) -> None:
    plain.ocr.mode = mode
    code, out, err = await ocrmesh(env, "ocr", "--grpc", "--ocr-addr", plain.addr, "--text", str(page))
    assert (code, out) == (exit_code, stdout)
    assert len(err.splitlines()) == 1
    assert err.startswith(f"ocrmesh: {page}: ")


async def test_lang_names_the_languages_of_the_call(plain: Served, env: dict[str, str], page: Path) -> None:
    code, out, err = await ocrmesh(
        env, "ocr", "--grpc", "--ocr-addr", plain.addr, "--text", "--lang", "vi, EN", str(page)
    )
    assert (code, out, err) == (0, "Hello\nworld\n", "")
    assert list(plain.ocr.requests[0].languages) == ["vi", "en"]


async def test_a_language_ocr_svc_does_not_read_is_rejected_input_listing_those_it_reads(
    plain: Served, env: dict[str, str], page: Path
) -> None:
    code, out, err = await ocrmesh(env, "ocr", "--grpc", "--ocr-addr", plain.addr, "--lang", "ko", str(page))
    assert (code, out) == (4, "")
    assert "language 'ko' is not read here; this deployment reads: en, vi (INVALID_ARGUMENT)" in err


async def test_a_malformed_lang_is_a_usage_error_before_any_call(
    plain: Served, env: dict[str, str], page: Path
) -> None:
    code, _, err = await ocrmesh(
        env, "ocr", "--grpc", "--ocr-addr", plain.addr, "--lang", "vietnamese", str(page)
    )
    assert code == 2
    assert "not an ISO 639-1 language code" in err
    assert plain.ocr.requests == []
