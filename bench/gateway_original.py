"""The original tutorial design (`bench/baseline/`: FastAPI gateway -> blocking HTTP ->
FastAPI auth service; OCR as a RabbitMQ request/reply with a new connection per request),
started as three processes on free ports for `bench.bench_gateway` to measure against."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import jwt
import pika
from pika.exceptions import ChannelClosedByBroker

from harness.ports import free_port
from harness.repo import ROOT
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.grpc_client import create_channel


class Baseline:
    """The tutorial design (`bench/baseline/`) as three processes on free ports."""

    def __init__(self, workdir: Path, rabbitmq_url: str, queue: str) -> None:
        self.workdir = workdir
        self.rabbitmq_url = rabbitmq_url
        self.queue = queue
        self.auth_port = free_port()
        self.gateway_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env: dict[str, str] = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "RABBITMQ_URL": rabbitmq_url,
            "BASELINE_OCR_QUEUE": queue,
            "BASELINE_AUTH_URL": f"http://127.0.0.1:{self.auth_port}",
            "BASELINE_PUBLIC_KEY_FILE": str(workdir / "public_key.pem"),
        }

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def log_of(self, name: str) -> str:
        path = self.workdir / f"baseline-{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def start(self, name: str, args: Sequence[str], extra_env: Mapping[str, str] | None = None) -> None:
        log = (self.workdir / f"baseline-{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_ocr_worker(self) -> None:
        self.start("ocr", ["-m", "bench.baseline.ocr_worker"])

    def write_public_key(self, pem: str) -> None:
        (self.workdir / "public_key.pem").write_text(pem)

    def start_http(self, *, database_url: str) -> None:
        env = {"DATABASE_URL": database_url}
        # uvicorn's defaults, as the tutorial ran it (uvloop and httptools when installed,
        # access log on).
        for name, app, port in (
            ("auth", "bench.baseline.auth_service:app", self.auth_port),
            ("gateway", "bench.baseline.gateway:app", self.gateway_port),
        ):
            self.start(name, ["-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)], env)

    def _check_alive(self, name: str) -> None:
        proc = self.processes[name]
        if proc.poll() is not None:
            raise RuntimeError(f"baseline {name} exited with {proc.returncode}:\n{self.log_of(name)}")

    def wait_http_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name, port in (("auth", self.auth_port), ("gateway", self.gateway_port)):
            while True:
                self._check_alive(name)
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/check_api", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"baseline {name} not ready:\n{self.log_of(name)}")
                time.sleep(0.1)

    def wait_ocr_ready(self, timeout: float = 120) -> None:
        """Until the worker consumes from its queue (it declares the queue once its model is
        loaded and warmed up)."""
        deadline = time.monotonic() + timeout
        connection = pika.BlockingConnection(pika.URLParameters(self.rabbitmq_url))
        try:
            while True:
                self._check_alive("ocr")
                channel = connection.channel()
                try:
                    if channel.queue_declare(self.queue, passive=True).method.consumer_count > 0:
                        channel.close()
                        return
                    channel.close()
                except ChannelClosedByBroker:
                    pass  # the queue does not exist yet
                if time.monotonic() > deadline:
                    raise TimeoutError(f"baseline OCR worker not ready:\n{self.log_of('ocr')}")
                time.sleep(0.2)
        finally:
            connection.close()

    def close(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with contextlib.suppress(Exception):
            connection = pika.BlockingConnection(pika.URLParameters(self.rabbitmq_url))
            try:
                connection.channel().queue_delete(self.queue)
            finally:
                connection.close()


@contextlib.contextmanager
def running_baseline(workdir: Path, rabbitmq_url: str, queue: str) -> Iterator[Baseline]:
    baseline = Baseline(workdir, rabbitmq_url, queue)
    try:
        yield baseline
    finally:
        baseline.close()


async def public_key_of(token: str, auth_addr: str) -> str:
    """The PEM of the key that signed `token`, as auth_svc publishes it (the original design's
    gateway verifies tokens with it)."""
    key_id = jwt.get_unverified_header(token).get("kid")
    channel = create_channel(auth_addr)
    try:
        reply = await auth_pb2_grpc.AuthServiceStub(channel).GetPublicKeys(auth_pb2.GetPublicKeysRequest())
    finally:
        await channel.close()
    for key in reply.keys:
        if key.key_id == key_id:
            return str(key.public_key_pem)
    raise RuntimeError(f"auth_svc does not publish the key {key_id!r}")
