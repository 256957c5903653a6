"""The whole mesh as real processes (the same `python -m <service>` entrypoints as
`make up` and compose), on free ports, with its own database, queues and mail folder.
Used by the e2e tests and the gateway benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.ports import free_port
from harness.repo import ROOT
from harness.scratch import delete_queues, drop_database, scratch_database_url
from ocrmesh.platform.health_probe import check
from ocrmesh.platform.settings import GrpcTls
from ocrmesh.rules.email_events.topology import EmailTopology

SERVICES = ("auth", "ocr", "notifier", "gateway")
MODULES = {"auth": "auth_svc", "ocr": "ocr_svc", "notifier": "notifier", "gateway": "gateway"}


@dataclass
class Mesh:
    """A running mesh. `env` is what every process got; `logs` holds each one's output."""

    workdir: Path
    env: dict[str, str]
    # The mesh's own database, dropped by `close`.
    database_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Replicas started under their own name ("ocr-2"): which service, and their own env.
    replicas: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"

    @property
    def auth_addr(self) -> str:
        return self.env["AUTH_ADDR"]

    @property
    def ocr_addr(self) -> str:
        return self.env["OCR_ADDR"]

    @property
    def mail_dir(self) -> Path:
        return Path(self.env["MAIL_DIR"])

    @property
    def metrics_targets(self) -> dict[str, str]:
        """Prometheus job -> host:port of each service's metrics (deploy/prometheus's jobs)."""
        return {
            "gateway": f"127.0.0.1:{self.env['GATEWAY_PORT']}",
            "auth_svc": f"127.0.0.1:{self.env['AUTH_METRICS_PORT']}",
            "ocr_svc": f"127.0.0.1:{self.env['OCR_METRICS_PORT']}",
            "notifier": f"127.0.0.1:{self.env['NOTIFIER_METRICS_PORT']}",
        }

    def log_of(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- processes -------------------------------------------------------------------------
    def start(self, name: str, *, service: str | None = None, env: Mapping[str, str] | None = None) -> None:
        """Start `name` (a service), or a replica of `service` named `name` with `env` over
        the mesh's (for example its own OCR_HOST); a replica keeps its env across restarts."""
        if service is not None:
            self.replicas[name] = (service, {**self.env, **(env or {})})
        service, process_env = self.replicas.get(name, (name, self.env))
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", MODULES[service]],
            cwd=ROOT,
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        if sig == signal.SIGKILL:
            # A replica that dies outright takes its workers with it (a host or pod lost),
            # rather than leaving a supervised worker to drain on SIGTERM from its parent.
            for child in _children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_of(name)[-4000:]}")
            if self._is_ready(name):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout}s:\n{self.log_of(name)[-4000:]}")

    def _is_ready(self, name: str) -> bool:
        if name in self.replicas:
            service, env = self.replicas[name]
            address = f"{env[service.upper() + '_HOST']}:{env[service.upper() + '_PORT']}"
            return check(address, timeout=1, tls=GrpcTls.from_env(env))
        if name == "auth":
            return check(self.auth_addr, timeout=1, tls=GrpcTls.from_env(self.env))
        if name == "ocr":
            return check(self.ocr_addr, timeout=1, tls=GrpcTls.from_env(self.env))
        if name == "gateway":
            try:
                return httpx.get(f"{self.gateway_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        # The notifier has no port: it is ready once it consumes (see its health file).
        health_file = self.env.get("NOTIFIER_HEALTH_FILE")
        return health_file is not None and Path(health_file).exists()

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        with contextlib.suppress(Exception):
            drop_database(self.database_url)
        try:
            delete_queues(self.env["RABBITMQ_URL"], EmailTopology(queue=self.env["EMAIL_QUEUE"]))
        except Exception as exc:  # teardown must not hide the test's own result; say it
            warnings.warn(f"could not delete the mesh's queues: {exc!r}", stacklevel=1)


@contextlib.contextmanager
def running_mesh(
    workdir: Path,
    *,
    postgres_admin_url: str,
    rabbitmq_url: str,
    extra_env: Mapping[str, str] | None = None,
    services: tuple[str, ...] = SERVICES,
) -> Iterator[Mesh]:
    """Start `services` with a fresh database and queue, wait until each is ready, and stop
    them all (SIGTERM) and drop the database afterwards."""
    tag = uuid.uuid4().hex[:8]
    database_url = scratch_database_url(postgres_admin_url, f"ocrmesh_e2e_{tag}")
    auth_port, ocr_port, gateway_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "OCR_", "AUTH_", "GATEWAY_"))},
        "PYTHONUNBUFFERED": "1",
        # As the image and `make up` run the services (Dockerfile).
        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
        "DATABASE_URL": database_url,
        "RABBITMQ_URL": rabbitmq_url,
        "EMAIL_QUEUE": f"email_notification_e2e_{tag}",
        "AUTH_PORT": str(auth_port),
        "OCR_PORT": str(ocr_port),
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_HOST": "127.0.0.1",
        "AUTH_ADDR": f"127.0.0.1:{auth_port}",
        "OCR_ADDR": f"127.0.0.1:{ocr_port}",
        "AUTH_KEY_DIR": str(workdir / "keys"),
        "MAIL_DIR": str(workdir / "mail"),
        "NOTIFIER_HEALTH_FILE": str(workdir / "notifier.alive"),
        "OCR_WORKERS": "1",
        "SHUTDOWN_GRACE_SECONDS": "5",
        # Prometheus metrics of the gRPC services and the notifier (the gateway's: /metrics).
        "AUTH_METRICS_PORT": str(free_port()),
        "OCR_METRICS_PORT": str(free_port()),
        "NOTIFIER_METRICS_PORT": str(free_port()),
        **(extra_env or {}),
    }
    (workdir / "mail").mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "create_db.py")], env=env, check=True, cwd=ROOT)
    mesh = Mesh(workdir=workdir, env=env, database_url=database_url)
    try:
        for name in services:
            mesh.start(name)
        for name in services:
            mesh.wait_ready(name)
        yield mesh
    finally:
        mesh.close()


def _children(pid: int) -> list[int]:
    """The pids of `pid`'s direct children (Linux /proc; none elsewhere)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found
