"""The gateway under a real uvicorn: stream events flushed one by one, a client that goes
away cancelling the OCR call, readiness, outages and recovery, `python -m gateway`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from harness.ports import free_port
from tests.integration.gateway.fakes import PNG_BYTES, gateway_client

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[3]
# Generous: these bound a hang, they do not measure speed (the machine is shared and slow).
WAIT = 15.0


def upload() -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("page.png", PNG_BYTES, "image/png")}


async def next_within(lines: AsyncIterator[str]) -> str:
    return await asyncio.wait_for(anext(lines), WAIT)


async def test_ndjson_events_are_flushed_as_ocr_svc_produces_them(mesh, live_gateway) -> None:
    mesh.ocr.mode = "gated"
    gateway = await live_gateway(mesh.settings())
    mesh.ocr.gate.put_nowait(None)  # let "started" out; every later event waits for the test
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client,
        client.stream(
            "POST", "/ocr/stream", files=upload(), headers={"Authorization": f"Bearer {mesh.token()}"}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = response.aiter_lines()
        # Each event is read while ocr_svc is still held before producing the next one:
        # so it cannot have been buffered until the end.
        received = [json.loads(await next_within(lines))]
        for _ in range(3):
            assert mesh.ocr.gate.empty()
            mesh.ocr.gate.put_nowait(None)
            received.append(json.loads(await next_within(lines)))
    assert [event["type"] for event in received] == ["started", "line", "line", "completed"]


async def test_sse_events_are_flushed_as_ocr_svc_produces_them(mesh, live_gateway) -> None:
    mesh.ocr.mode = "gated"
    gateway = await live_gateway(mesh.settings())
    mesh.ocr.gate.put_nowait(None)
    headers = {"Authorization": f"Bearer {mesh.token()}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client,
        client.stream("POST", "/ocr/stream", files=upload(), headers=headers) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        names = []
        for _ in range(4):
            event_line, data_line, blank = [await next_within(lines) for _ in range(3)]
            names.append(event_line.removeprefix("event: "))
            assert json.loads(data_line.removeprefix("data: "))["type"] == names[-1]
            assert blank == ""
            mesh.ocr.gate.put_nowait(None)
    assert names == ["started", "line", "line", "completed"]


async def test_a_client_that_goes_away_mid_stream_cancels_the_ocr_call(mesh, live_gateway) -> None:
    mesh.ocr.mode = "gated"
    # A deadline far beyond WAIT: only the disconnect can end the call in time.
    gateway = await live_gateway(mesh.settings(ocr_timeout_seconds=600))
    mesh.ocr.gate.put_nowait(None)
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client,
        client.stream(
            "POST", "/ocr/stream", files=upload(), headers={"Authorization": f"Bearer {mesh.token()}"}
        ) as response,
    ):
        first = json.loads(await next_within(response.aiter_lines()))
        assert first["type"] == "started"
    # The connection is closed with ocr_svc still working on the image.
    await asyncio.wait_for(mesh.ocr.cancelled.wait(), WAIT)


@pytest.mark.parametrize(("path", "mode"), [("/ocr", "hang_after_start"), ("/ocr/stream", "hang")])
async def test_a_client_that_gives_up_waiting_for_ocr_cancels_the_call(
    mesh, live_gateway, path: str, mode: str
) -> None:
    mesh.ocr.mode = mode
    # A deadline far beyond WAIT: only the disconnect can end the call in time.
    gateway = await live_gateway(mesh.settings(ocr_timeout_seconds=600))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client:
        request = asyncio.create_task(
            client.post(path, files=upload(), headers={"Authorization": f"Bearer {mesh.token()}"})
        )
        await asyncio.wait_for(mesh.ocr.calls_started.wait(), WAIT)
        request.cancel()  # the client gives up: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.wait_for(mesh.ocr.cancelled.wait(), WAIT)


async def test_a_stream_past_its_deadline_ends_with_a_504_error_event(mesh, live_gateway) -> None:
    mesh.ocr.mode = "hang_after_start"
    gateway = await live_gateway(mesh.settings(ocr_timeout_seconds=1.0))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client:
        response = await client.post(
            "/ocr/stream", files=upload(), headers={"Authorization": f"Bearer {mesh.token()}"}
        )
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [event["type"] for event in events] == ["started", "error"]
    assert events[-1]["status"] == 504


async def test_readyz_is_200_when_both_services_serve(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"auth": "SERVING", "ocr": "SERVING"}}
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_readyz_names_the_service_that_is_not_serving(client: httpx.AsyncClient, mesh) -> None:
    await mesh.ocr_server.set_serving(False)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "checks": {"auth": "SERVING", "ocr": "NOT_SERVING"}}


async def test_auth_svc_down_is_503_within_the_deadline_not_a_hang(mesh) -> None:
    await mesh.auth_server.stop(0)
    settings = mesh.settings(grpc_timeout_seconds=3.0)
    async with gateway_client(settings) as client:
        started = time.monotonic()
        response = await client.post("/auth/login", json={"username": "ada@example.com", "password": "x"})
        elapsed = time.monotonic() - started
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"detail": "the auth service is unavailable, try again shortly"}
    assert elapsed < settings.grpc_timeout_seconds + 2  # loose: it must not wait past the deadline
    assert ready.status_code == 503
    assert ready.json()["checks"]["auth"] == "UNAVAILABLE"


async def test_ocr_svc_down_then_back_works_again_without_restarting_the_gateway(
    client: httpx.AsyncClient, mesh
) -> None:
    headers = {"Authorization": f"Bearer {mesh.token()}"}
    assert (await client.post("/ocr", files=upload(), headers=headers)).status_code == 200

    await mesh.ocr_server.stop(0)
    down = await client.post("/ocr", files=upload(), headers=headers)
    assert down.status_code == 503
    assert down.json() == {"detail": "the ocr service is unavailable, try again shortly"}
    assert (await client.get("/readyz")).status_code == 503

    await mesh.restart_ocr()
    deadline = time.monotonic() + WAIT
    while True:  # the channel reconnects on its own, within its (short) backoff
        again = await client.post("/ocr", files=upload(), headers=headers)
        if again.status_code == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert again.status_code == 200
    assert again.json()["ocr_text"] == "Hello\nworld"
    assert (await client.get("/readyz")).status_code == 200


@asynccontextmanager
async def gateway_process(
    mesh, log_path: Path, **extra_env: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m gateway` against the test servicers; yields it once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "AUTH_ADDR": f"127.0.0.1:{mesh.auth_port}",
        "OCR_ADDR": f"127.0.0.1:{mesh.ocr_port}",
        "TOKEN_ISSUER": mesh.issuer.issuer,
        "TOKEN_AUDIENCE": mesh.issuer.audience,
        "SHUTDOWN_GRACE_SECONDS": "10",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            while True:
                try:
                    await client.get("/healthz")
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_python_m_gateway_serves_and_stops_cleanly_on_sigterm(mesh, tmp_path: Path) -> None:
    log_path = tmp_path / "gateway.log"
    async with gateway_process(mesh, log_path) as (process, url):
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            response = await client.get("/readyz", headers={"X-Request-ID": "req-main-1"})
            docs = await client.get("/docs")
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "req-main-1"
        assert docs.status_code == 200
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(process.wait, 20)
    assert returncode == 0
    output = log_path.read_text()
    log_lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert log_lines, output
    assert all(line["service"] == "gateway" for line in log_lines)
    assert any(line["msg"] == "gRPC channels closed" for line in log_lines)
    assert "Traceback" not in output


async def test_a_stream_in_flight_finishes_when_the_gateway_is_told_to_stop(mesh, tmp_path: Path) -> None:
    mesh.ocr.mode = "gated"
    mesh.ocr.gate.put_nowait(None)
    async with gateway_process(mesh, tmp_path / "gateway.log") as (process, url):
        headers = {"Authorization": f"Bearer {mesh.token()}"}
        async with (
            httpx.AsyncClient(base_url=url, timeout=WAIT) as client,
            client.stream("POST", "/ocr/stream", files=upload(), headers=headers) as response,
        ):
            lines = response.aiter_lines()
            received = [json.loads(await next_within(lines))]
            process.send_signal(signal.SIGTERM)
            for _ in range(3):
                mesh.ocr.gate.put_nowait(None)
                received.append(json.loads(await next_within(lines)))
        returncode = await asyncio.to_thread(process.wait, 20)
    assert [event["type"] for event in received] == ["started", "line", "line", "completed"]
    assert returncode == 0


async def test_several_gateway_workers_share_the_port_and_stop_together(mesh, tmp_path: Path) -> None:
    log_path = tmp_path / "gateway.log"
    async with gateway_process(mesh, log_path, GATEWAY_WORKERS="2") as (process, url):
        deadline = time.monotonic() + 60
        while True:  # both workers up (each opens its own channels)
            lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
            if sum(line["msg"] == "gRPC channels open" for line in lines) == 2:
                break
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.2)
        for _ in range(40):  # a new connection each: the kernel spreads connections
            async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                assert (await client.get("/docs")).status_code == 200
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(process.wait, 30)
    assert returncode == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    serving = {line["pid"] for line in lines if line.get("path") == "/docs"}
    assert len(serving) == 2
    assert {line["pid"] for line in lines if line["msg"] == "gRPC channels closed"} >= serving


def test_python_m_gateway_refuses_a_bad_setting_with_exit_code_2() -> None:
    env = {**os.environ, "GATEWAY_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert b"GATEWAY_PORT" in result.stderr
    assert b"Traceback" not in result.stderr
