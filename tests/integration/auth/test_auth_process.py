"""`python -m auth_svc` as a real process: creates and migrates its database, serves,
stops cleanly on SIGTERM, refuses to start when misconfigured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy.engine import make_url

from auth_svc.db import drop_database
from harness.ports import free_port
from harness.prometheus import value
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.health_probe import check
from ocrmesh.rules.email_events import EmailTopology

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def fresh_database_url(postgres_admin_url: str, run_id: str) -> Iterator[str]:
    url = make_url(postgres_admin_url).set(database=f"ocrmesh_test_{run_id}_auth_proc")
    rendered = url.render_as_string(hide_password=False)
    yield rendered
    drop_database(rendered)


def auth_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "DATABASE_", "TOKEN_", "OTP_"))}
    env.update({"AUTH_KEY_DIR": str(tmp_path / "keys"), "PYTHONUNBUFFERED": "1", **extra})
    return env


def serving_env(
    tmp_path: Path, database_url: str, rabbitmq_url: str, topology: EmailTopology, port: int, **extra: str
) -> dict[str, str]:
    """The environment of an auth_svc that serves on 127.0.0.1:`port` with its own database
    and queues."""
    return auth_env(
        tmp_path,
        DATABASE_URL=database_url,
        RABBITMQ_URL=rabbitmq_url,
        EMAIL_QUEUE=topology.queue,
        AUTH_PORT=str(port),
        AUTH_HOST="127.0.0.1",
        **extra,
    )


def test_service_creates_its_database_serves_and_stops_on_sigterm(
    fresh_database_url: str, rabbitmq_url: str, email_topology: EmailTopology, tmp_path: Path
) -> None:
    port = free_port()
    env = serving_env(tmp_path, fresh_database_url, rabbitmq_url, email_topology, port)
    log = (tmp_path / "auth.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "auth_svc"], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60  # imports alone take seconds on a busy CI machine
        while not check(f"127.0.0.1:{port}", timeout=1.0):
            assert process.poll() is None, (tmp_path / "auth.log").read_text()
            assert time.monotonic() < deadline, "auth_svc did not become SERVING"
            time.sleep(0.2)
        assert check(f"127.0.0.1:{port}", service="ocrmesh.auth.v1.AuthService")

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "auth.log").read_text()
    assert "database created" in output
    assert "generated a signing key" in output
    assert (tmp_path / "keys" / "auth_signing_key.pem").exists()


def test_production_without_a_signing_key_refuses_to_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auth_svc"],
        cwd=REPO,
        env=auth_env(tmp_path, ENVIRONMENT="production"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "AUTH_SIGNING_KEY_FILE" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_unreadable_signing_key_file_refuses_to_start(tmp_path: Path, processes: str) -> None:
    # With several processes, the supervisor stops at the first worker that cannot start
    # (exit 2 again) instead of restarting it for ever.
    done = subprocess.run(
        [sys.executable, "-m", "auth_svc"],
        cwd=REPO,
        env=auth_env(
            tmp_path,
            AUTH_SIGNING_KEY_FILE=str(tmp_path / "absent.pem"),
            AUTH_PROCESSES=processes,
            AUTH_HOST="127.0.0.1",
            AUTH_PORT="0",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "cannot read key file" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def _public_key_ids(port: int, calls: int) -> set[tuple[str, ...]]:
    """The published key ids, each call on a new connection (SO_REUSEPORT spreads
    connections, not calls); the access log says which process answered each."""
    seen = set()
    for _ in range(calls):
        # A local subchannel pool: a new channel must mean a new connection, not gRPC's shared one.
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        try:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            reply = stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=10)
        finally:
            channel.close()
        seen.add(tuple(key.key_id for key in reply.keys))
    return seen


def _log_entries(log_text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]


def _access_pids(log_text: str) -> list[int]:
    return [
        entry["pid"]
        for entry in _log_entries(log_text)
        if entry.get("method") == "/ocrmesh.auth.v1.AuthService/GetPublicKeys"
    ]


def test_several_processes_share_the_port_survive_a_killed_worker_and_stop_together(
    fresh_database_url: str, rabbitmq_url: str, email_topology: EmailTopology, tmp_path: Path
) -> None:
    port = free_port()
    env = serving_env(
        tmp_path, fresh_database_url, rabbitmq_url, email_topology, port, AUTH_PROCESSES="2", AUTH_WORKERS="2"
    )
    log_path = tmp_path / "auth.log"
    log = log_path.open("w+")
    process = subprocess.Popen([sys.executable, "-m", "auth_svc"], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        workers = _wait_for_workers(process, 2, log_path)
        _wait_serving(port, process, log_path)
        # Every worker serves, and all of them publish the one key the first one generated.
        assert len(_public_key_ids(port, 40)) == 1
        assert set(_access_pids(log_path.read_text())) == set(workers)

        # A worker that dies is replaced; the service keeps answering meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        replaced = _wait_for_workers(process, 3, log_path)
        assert replaced[2] not in workers
        _wait_serving(port, process, log_path)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    entries = _log_entries(log_path.read_text())
    for pid in (e["worker_pid"] for e in entries if e.get("msg") == "worker started"):
        assert not _alive(pid), f"worker {pid} outlived its supervisor"


def _worker_pids(log_text: str) -> list[int]:
    return [entry["worker_pid"] for entry in _log_entries(log_text) if entry.get("msg") == "worker started"]


def _wait_for_workers(process: subprocess.Popen[bytes], count: int, log_path: Path) -> list[int]:
    """The pids of the first `count` workers started, once each of them serves."""
    deadline = time.monotonic() + 60
    while True:
        entries = _log_entries(log_path.read_text())
        started = [e["worker_pid"] for e in entries if e.get("msg") == "worker started"][:count]
        serving = {e["pid"] for e in entries if e.get("msg") == "auth_svc serving"}
        if len(started) == count and serving >= set(started) - {p for p in started if not _alive(p)}:
            return started
        assert process.poll() is None or count == 0, log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, log_path.read_text()[-4000:]
        time.sleep(0.1)


def _wait_serving(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while not check(f"127.0.0.1:{port}", timeout=1.0):
        assert process.poll() is None, log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, "auth_svc did not become SERVING"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_several_processes_add_up_behind_one_metrics_port(
    fresh_database_url: str, rabbitmq_url: str, email_topology: EmailTopology, tmp_path: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    env = serving_env(
        tmp_path,
        fresh_database_url,
        rabbitmq_url,
        email_topology,
        port,
        AUTH_PROCESSES="2",
        AUTH_WORKERS="2",
        AUTH_METRICS_PORT=str(metrics_port),
    )
    log_path = tmp_path / "auth.log"
    log = log_path.open("w+")
    process = subprocess.Popen([sys.executable, "-m", "auth_svc"], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        workers = _wait_for_workers(process, 2, log_path)
        _wait_serving(port, process, log_path)
        _public_key_ids(port, 30)
        # Both workers answered some of the calls; the supervisor's /metrics counts them all.
        assert set(_access_pids(log_path.read_text())) == set(workers)
        assert _handled(metrics_port, "GetPublicKeys") == 30

        # A killed worker's calls still count; its replacement's add to them.
        os.kill(workers[0], signal.SIGKILL)
        _wait_for_workers(process, 3, log_path)
        _wait_serving(port, process, log_path)
        _public_key_ids(port, 10)
        assert _handled(metrics_port, "GetPublicKeys") == 40

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def _handled(metrics_port: int, method: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    return value(text, "grpc_server_handled_total", grpc_method=method, grpc_code="OK")
