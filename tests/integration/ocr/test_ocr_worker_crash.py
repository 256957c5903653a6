"""`python -m ocr_svc` with its single process (OCR_PROCESSES=1) outlives a crash of the
worker that serves: the worker is SIGKILLed (what a native crash in a decoder or an engine
looks like) in the middle of a stream, the stream fails at once instead of hanging, the
process that was started (the supervisor, what `make up` and the container run) stays up,
a new worker answers within 10 s, the supervisor's `/metrics` adds up both workers, and
SIGTERM still stops everything with exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc import aio

from harness.images import render_text_image, sample_multiline_png
from harness.ports import free_port
from harness.prometheus import value
from harness.tokens import TokenIssuerForTests
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata, create_channel
from ocrmesh.platform.health_probe import check
from ocrmesh.rules.email_events import EmailTopology
from tests.integration.ocr.ocr_support import Broker
from tests.integration.ocr.test_ocr_process import ROOT, ocr_env

pytestmark = pytest.mark.integration

# The target of issue 27: ocr_svc's only worker killed, the service answers again within this.
RECOVERY_S = 10.0


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (from /proc: Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def log_entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def wait_for_one_serving_worker(supervisor: subprocess.Popen[bytes], port: int, log: Path) -> int:
    """The pid of the supervisor's only worker, once it is SERVING."""
    deadline = time.monotonic() + 90  # a cold start on a loaded CI machine
    while True:
        assert supervisor.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, "no SERVING worker:\n" + log.read_text()[-4000:]
        workers = children_of(supervisor.pid)
        if len(workers) == 1 and await asyncio.to_thread(check, f"127.0.0.1:{port}", timeout=1.0):
            return workers[0]
        await asyncio.sleep(0.2)


def many_lines_png() -> bytes:
    """A page of 60 lines: its stream runs long enough to be cut in the middle."""
    return render_text_image([f"Line {n:02d} of a long page that keeps the worker busy" for n in range(60)])


def recognize(
    stub: ocr_pb2_grpc.OcrServiceAsyncStub, issuer: TokenIssuerForTests, image: bytes, timeout: float
) -> aio.UnaryStreamCall[ocr_pb2.RecognizeRequest, ocr_pb2.RecognizeResponse]:
    return stub.Recognize(
        ocr_pb2.RecognizeRequest(image=image, filename="page.png"),
        metadata=bearer_metadata(issuer.mint()),
        timeout=timeout,
    )


async def kill_in_the_middle(
    stream: aio.UnaryStreamCall[ocr_pb2.RecognizeRequest, ocr_pb2.RecognizeResponse],
    worker: int,
    killed_at: list[float],
) -> None:
    """Read `stream`, SIGKILLing `worker` once it has sent its first line (when: appended to
    `killed_at`). A stream still open `RECOVERY_S` after that fails the test (TimeoutError)."""
    async with asyncio.timeout(RECOVERY_S):
        async for event in stream:
            assert event.WhichOneof("event") != "completed", "the stream ended before the kill"
            if event.WhichOneof("event") == "line" and not killed_at:
                os.kill(worker, signal.SIGKILL)
                killed_at.append(time.monotonic())


async def completes(
    stub: ocr_pb2_grpc.OcrServiceAsyncStub, issuer: TokenIssuerForTests, image: bytes, timeout: float
) -> bool:
    events = [event async for event in recognize(stub, issuer, image, timeout)]
    return events[-1].WhichOneof("event") == "completed"


async def test_the_only_worker_killed_mid_stream_is_replaced_and_the_service_answers_again(
    token_issuer: TokenIssuerForTests,
    rabbitmq_url: str,
    topology: EmailTopology,
    broker: Broker,
    tmp_path: Path,
) -> None:
    port, metrics_port = free_port(), free_port()
    env = ocr_env(
        OCR_PORT=str(port),
        OCR_HOST="127.0.0.1",
        OCR_METRICS_PORT=str(metrics_port),
        OCR_PROCESSES="1",
        SHUTDOWN_GRACE_SECONDS="2",
        AUTH_ADDR=token_issuer.target,
        RABBITMQ_URL=rabbitmq_url,
        EMAIL_QUEUE=topology.queue,
        EMAIL_RETRY_DELAYS=",".join(str(delay) for delay in topology.retry_delays),
    )
    log_path = tmp_path / "ocr.log"
    with log_path.open("w+") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "ocr_svc"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    # One channel for the whole test, as the gateway keeps one: recovery includes its reconnect.
    channel = create_channel(f"127.0.0.1:{port}", max_message_bytes=64 * 1024 * 1024)
    stub: ocr_pb2_grpc.OcrServiceAsyncStub = ocr_pb2_grpc.OcrServiceStub(channel)  # type: ignore[assignment]
    second: list[int] = []
    try:
        first = await wait_for_one_serving_worker(supervisor, port, log_path)
        assert await completes(stub, token_issuer, sample_multiline_png(), timeout=60)

        # The worker dies in the middle of a stream: the stream fails, it does not hang.
        stream = recognize(stub, token_issuer, many_lines_png(), timeout=60)
        kills: list[float] = []
        with pytest.raises(aio.AioRpcError) as broken:
            await kill_in_the_middle(stream, first, kills)
        assert kills, f"the stream failed before any line: {broken.value}"
        killed_at = kills[0]
        assert broken.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), broken.value
        stream_failed_after = time.monotonic() - killed_at

        # What was started stays up, and a new worker answers within the target.
        failures: list[str] = []
        while True:
            assert supervisor.poll() is None, log_path.read_text()[-4000:]
            elapsed = time.monotonic() - killed_at
            assert elapsed < RECOVERY_S, f"no answer {elapsed:.1f}s after the kill: {failures[-5:]}"
            try:
                if await completes(stub, token_issuer, sample_multiline_png(), timeout=RECOVERY_S):
                    break
            except aio.AioRpcError as error:
                failures.append(f"{error.code().name}: {error.details()}")
                await asyncio.sleep(0.1)
        recovered_after = time.monotonic() - killed_at
        assert recovered_after < RECOVERY_S, f"answered again only after {recovered_after:.1f}s"
        # While the new worker loads its engine, calls are refused as UNAVAILABLE (retry in
        # a moment), never an INTERNAL from an engine that is not loaded yet.
        assert all(failure.startswith("UNAVAILABLE") for failure in failures), failures
        print(
            f"\nstream failed {stream_failed_after:.2f}s after the kill ({broken.value.code().name}); "
            f"answered again after {recovered_after:.2f}s; failed calls meanwhile: {failures}"
        )
        second = children_of(supervisor.pid)
        assert len(second) == 1
        assert second[0] != first
        # The supervisor serves /metrics: the dead worker's call still counts, its broken
        # stream is no longer in flight.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert value(metrics, "grpc_server_handled_total", grpc_method="Recognize", grpc_code="OK") == 2
        assert value(metrics, "grpc_server_streams_in_flight", grpc_method="Recognize") == 0

        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(supervisor.wait, 40) == 0
    finally:
        await channel.close()
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    assert second, "the test stopped before the worker was replaced"
    assert not alive(second[0]), "the worker outlived its supervisor"
    entries = log_entries(log_path)
    deaths = [e for e in entries if e.get("msg") == "worker died; starting a new one"]
    assert [(e["worker_pid"], e["exit_code"]) for e in deaths] == [(first, -signal.SIGKILL)]
    assert [e["worker_pid"] for e in entries if e.get("msg") == "worker serving"] == [first, second[0]]
    assert any(e.get("msg") == "stopped" and e.get("pid") == second[0] for e in entries)
