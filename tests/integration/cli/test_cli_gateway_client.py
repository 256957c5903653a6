"""The CLI's gateway client and OCR runner against the real gateway app in-process (httpx's
ASGI transport) and the test servicers on real gRPC servers (port 0): every way a REST call
or a stream can fail ends as the documented exit code, failures mid-stream included."""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from harness.images import sample_multiline_png
from harness.tokens import TokenIssuerForTests
from ocrmesh.auth.v1 import auth_pb2_grpc
from ocrmesh.ocr.v1 import ocr_pb2_grpc
from ocrmesh.platform.grpc_server import HostedService, create_server
from ocrmesh.rules.ocr_events import OcrEvent
from ocrmesh_cli.batch import recognize_files
from ocrmesh_cli.client import Gateway
from ocrmesh_cli.errors import CliError, ExitCode
from ocrmesh_cli.output import TextOutput
from tests.integration.gateway.fakes import AUTH_SERVICE, OCR_SERVICE, FakeAuth, FakeOcr, Mesh

pytestmark = pytest.mark.integration

URL = "http://gateway"


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    issuer = TokenIssuerForTests()
    auth, ocr = FakeAuth(issuer), FakeOcr()
    auth_server, auth_port = create_server(
        [HostedService.of(auth, auth_pb2_grpc.add_AuthServiceServicer_to_server, AUTH_SERVICE)]
    )
    ocr_server, ocr_port = create_server(
        [HostedService.of(ocr, ocr_pb2_grpc.add_OcrServiceServicer_to_server, OCR_SERVICE)]
    )
    await auth_server.start()
    await ocr_server.start()
    yield Mesh(issuer, auth, ocr, auth_server, ocr_server, auth_port, ocr_port)
    await auth_server.stop(0)
    await ocr_server.stop(0)


@asynccontextmanager
async def gateway(mesh: Mesh, **settings: Any) -> AsyncIterator[Gateway]:
    """The CLI's client for a gateway app (with its lifespan) on the test servicers."""
    app = create_app(mesh.settings(**settings))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), Gateway(URL, timeout=10, transport=transport) as client:
        yield client


@pytest.fixture
async def client(mesh: Mesh) -> AsyncIterator[Gateway]:
    async with gateway(mesh) as client:
        yield client


async def test_login_gives_a_token_that_me_accepts(mesh: Mesh, client: Gateway) -> None:
    mesh.auth.add_user(email="ada@example.com", password="correct horse", name="Ada")
    token = await client.login("ada@example.com", "correct horse")
    user = await client.me(token.access_token)
    assert (user.email, user.is_verified, token.expires_in > 0) == ("ada@example.com", True, True)


@pytest.mark.parametrize(
    ("verified", "password", "message"),
    [(True, "wrong horse", "wrong email or password"), (False, "correct horse", "verify your email")],
)
async def test_a_wrong_password_or_an_unverified_account_is_an_auth_failure(
    mesh: Mesh, client: Gateway, verified: bool, password: str, message: str
) -> None:
    mesh.auth.add_user(email="ada@example.com", password="correct horse", verified=verified)
    with pytest.raises(CliError) as raised:
        await client.login("ada@example.com", password)
    assert raised.value.code == ExitCode.AUTH
    assert raised.value.message.startswith(f"login: {message}")


async def test_a_token_the_gateway_refuses_is_an_auth_failure(client: Gateway) -> None:
    with pytest.raises(CliError) as raised:
        await client.me("not.a.token")
    assert raised.value.code == ExitCode.AUTH
    assert "(HTTP 401)" in raised.value.message


async def test_a_body_the_gateway_refuses_is_rejected_input(client: Gateway) -> None:
    with pytest.raises(CliError) as raised:
        await client.verify("ada@example.com", "x" * 40)
    assert raised.value.code == ExitCode.REJECTED


async def run_ocr(client: Gateway, token: str, tmp_path: Path) -> tuple[ExitCode, str, str]:
    page = tmp_path / "page.png"
    page.write_bytes(sample_multiline_png())
    out, err = io.StringIO(), io.StringIO()

    def recognize(data: bytes, filename: str) -> AsyncGenerator[OcrEvent, None]:
        return client.recognize(token, data, filename)

    output = TextOutput(several=False, stdout=out, stderr=err)
    code = await recognize_files([page], recognize, output, concurrency=1, seconds=30)
    return code, out.getvalue(), err.getvalue().removeprefix(f"ocrmesh: {page}: ")


async def test_ocr_streams_the_lines(mesh: Mesh, client: Gateway, tmp_path: Path) -> None:
    assert await run_ocr(client, mesh.token(), tmp_path) == (ExitCode.OK, "Hello\nworld\n", "")


@pytest.mark.parametrize(
    ("mode", "exit_code", "stdout", "stderr"),
    [
        ("invalid", ExitCode.REJECTED, "", "image: cannot decode this file (HTTP 400)\n"),
        ("busy", ExitCode.UNAVAILABLE, "", "the OCR queue is full, retry later (HTTP 429)\n"),
        ("fail_mid", ExitCode.FAILURE, "Hello\n", "internal error"),
        ("no_completion", ExitCode.UNAVAILABLE, "", "without a result (HTTP 502)\n"),
    ],
)
async def test_each_failure_of_a_stream_has_its_exit_code(
    mesh: Mesh, client: Gateway, tmp_path: Path, mode: str, exit_code: ExitCode, stdout: str, stderr: str
) -> None:
    mesh.ocr.mode = mode
    code, out, err = await run_ocr(client, mesh.token(), tmp_path)
    assert (code, out) == (exit_code, stdout)
    assert stderr in err
    assert len(err.splitlines()) == 1


async def test_a_stream_past_the_gateways_deadline_is_unavailable(mesh: Mesh, tmp_path: Path) -> None:
    mesh.ocr.mode = "hang_after_start"
    async with gateway(mesh, ocr_timeout_seconds=0.5) as client:
        code, out, err = await run_ocr(client, mesh.token(), tmp_path)
    assert (code, out) == (ExitCode.UNAVAILABLE, "")
    assert err.endswith("(HTTP 504)\n")


async def test_ocr_sends_the_languages_and_a_language_not_read_is_rejected_input(
    mesh: Mesh, client: Gateway, tmp_path: Path
) -> None:
    events = [
        event async for event in client.recognize(mesh.token(), sample_multiline_png(), "p.png", ["vi", "en"])
    ]
    assert len(events) == 4
    assert list(mesh.ocr.requests[-1].languages) == ["vi", "en"]

    with pytest.raises(CliError) as refused:
        [event async for event in client.recognize(mesh.token(), sample_multiline_png(), "p.png", ["ko"])]
    assert refused.value.code == ExitCode.REJECTED
    assert "languages: language 'ko' is not read here; this deployment reads: en, vi (HTTP 422)" in str(
        refused.value
    )
