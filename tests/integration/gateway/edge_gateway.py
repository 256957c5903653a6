"""The gateway as users run it, `python -m gateway` (uvicorn) as a process, with limits set
small so each edge test takes seconds; and a raw-socket client, so that a test can send
exactly the bytes a hostile client sends, as slowly as it likes.

auth_svc and ocr_svc are not running (their addresses point at closed ports): every refusal
the edge tests see must come before a route calls them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.ports import free_port
from harness.repo import ROOT

UPLOAD_LIMIT = 100_000
BODY_LIMIT = 16 * 1024
HEADER_TIMEOUT = 1.5
BODY_IDLE_TIMEOUT = 2.0
BODY_TIMEOUT = 4.0
PER_CLIENT_REQUESTS = 3
PER_CLIENT_CONNECTIONS = 6
PROXY = "127.0.0.3"
# A refusal must come within this (the issue: bodies "never answered"); generous for a busy machine.
PROMPT = 2.0


@dataclass(frozen=True)
class EdgeGateway:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running_edge_gateway(log: Path) -> Iterator[EdgeGateway]:
    """`python -m gateway` with the limits above, its output in `log`, until the block ends."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "GRPC_", "AUTH_", "OCR_"))},
        "PYTHONUNBUFFERED": "1",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_WORKERS": "1",
        "AUTH_ADDR": f"127.0.0.1:{free_port()}",
        "OCR_ADDR": f"127.0.0.1:{free_port()}",
        "GRPC_TIMEOUT_SECONDS": "1",
        "GATEWAY_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "GATEWAY_MAX_BODY_BYTES": str(BODY_LIMIT),
        "GATEWAY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "GATEWAY_BODY_IDLE_TIMEOUT_SECONDS": str(BODY_IDLE_TIMEOUT),
        "GATEWAY_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "GATEWAY_MAX_REQUESTS_PER_CLIENT": str(PER_CLIENT_REQUESTS),
        "GATEWAY_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT_CONNECTIONS),
        "SHUTDOWN_GRACE_SECONDS": "1",
        # The "reverse proxy" of the proxy test: a third local address.
        "GATEWAY_TRUSTED_PROXIES": PROXY,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield EdgeGateway(port=port, log=log)
    finally:
        proc.terminate()
        proc.wait(15)


def connect(gateway: EdgeGateway, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever of the body arrived before the server closed or the
    declared length was read."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), data[:200]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def headers_of(method: str, path: str, *extra: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: test", *extra, "", ""]).encode()


def closed_by_server(sock: socket.socket, timeout: float = 5) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def timed_response(sock: socket.socket) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    status, headers, _ = read_response(sock)
    return status, headers, time.monotonic() - started
