"""`python -m auth_svc` as a real process: creates and migrates its database, serves,
stops cleanly on SIGTERM, refuses to start when misconfigured."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from auth_svc.db import drop_database
from ocrmesh.events import EmailTopology
from ocrmesh.health_probe import check

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def test_service_creates_its_database_serves_and_stops_on_sigterm(
    fresh_database_url: str, rabbitmq_url: str, email_topology: EmailTopology, tmp_path: Path
) -> None:
    port = free_port()
    env = auth_env(
        tmp_path,
        DATABASE_URL=fresh_database_url,
        RABBITMQ_URL=rabbitmq_url,
        EMAIL_QUEUE=email_topology.queue,
        AUTH_PORT=str(port),
        AUTH_HOST="127.0.0.1",
    )
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


def test_unreadable_signing_key_file_refuses_to_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auth_svc"],
        cwd=REPO,
        env=auth_env(tmp_path, AUTH_SIGNING_KEY_FILE=str(tmp_path / "absent.pem")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "cannot read key file" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
