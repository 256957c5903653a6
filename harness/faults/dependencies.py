"""The real PostgreSQL and RabbitMQ of this machine broken on purpose, and always given back.

Restarting the PostgreSQL cluster or stopping RabbitMQ's app affects everything else on the
machine that uses them, so each fault here restores its dependency in a `finally` and waits
until it accepts connections again before returning, whatever happened in between."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pika
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

POSTGRES_CONFIG = Path("/etc/postgresql")


def _run(
    command: list[str], timeout: float = 120, *, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    log.log(logging.DEBUG if quiet else logging.INFO, "running %s", " ".join(command))
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


# -- PostgreSQL ------------------------------------------------------------------------------
def postgres_cluster() -> tuple[str, str] | None:
    """(version, "main") of the local Debian cluster, or None without pg_ctlcluster."""
    versions = (
        sorted(p.name for p in POSTGRES_CONFIG.glob("*") if (p / "main").is_dir())
        if POSTGRES_CONFIG.is_dir()
        else []
    )
    if not versions or not _has("pg_ctlcluster"):
        return None
    return versions[-1], "main"


def _has(program: str) -> bool:
    return any(
        (Path(d) / program).exists()
        for d in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/sbin"]
    )


def postgres_answers(admin_url: str, timeout: float = 2.0) -> bool:
    engine = create_engine(
        make_url(admin_url), poolclass=NullPool, connect_args={"connect_timeout": max(1, int(timeout))}
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def wait_postgres(admin_url: str, timeout: float = 120) -> float:
    """Wait until PostgreSQL accepts connections; the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    while not postgres_answers(admin_url):
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL does not accept connections after {timeout}s")
        time.sleep(0.1)
    return time.monotonic()


def restart_postgres(admin_url: str) -> float:
    """Restart the whole cluster (every connection ends); the time it accepts connections
    again. Always leaves it started."""
    cluster = postgres_cluster()
    if cluster is None:
        raise RuntimeError("no local PostgreSQL cluster to restart (pg_ctlcluster, /etc/postgresql)")
    version, name = cluster
    try:
        done = _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart"])
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctlcluster restart failed: {done.stderr.strip()}")
    finally:
        if not postgres_answers(admin_url, timeout=5):
            _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"])
    return wait_postgres(admin_url)


@contextlib.contextmanager
def table_locked(database_url: str, table: str) -> Iterator[None]:
    """An ACCESS EXCLUSIVE lock on `table` held until the block ends: every statement that
    touches it waits (PostgreSQL "slow" for the callers, while it still answers SELECT 1)."""
    engine = create_engine(make_url(database_url), poolclass=NullPool)
    connection = engine.connect()
    try:
        transaction = connection.begin()
        connection.execute(text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
        try:
            yield
        finally:
            transaction.rollback()
    finally:
        connection.close()
        engine.dispose()


def database_connections(admin_url: str, database: str) -> int:
    """Connections to `database` (pg_stat_activity)."""
    engine = create_engine(make_url(admin_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"), {"name": database}
            ).scalar_one()
        return int(found)
    finally:
        engine.dispose()


# -- RabbitMQ ----------------------------------------------------------------------------------
def rabbitmq_answers(url: str) -> bool:
    params = pika.URLParameters(url)
    params.socket_timeout = 2
    params.blocked_connection_timeout = 2
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
        return True
    except Exception:
        return False


def wait_rabbitmq(url: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while not rabbitmq_answers(url):
        if time.monotonic() > deadline:
            raise TimeoutError(f"RabbitMQ does not accept connections after {timeout}s")
        time.sleep(0.2)
    return time.monotonic()


@contextlib.contextmanager
def rabbitmq_stopped(url: str) -> Iterator[None]:
    """`rabbitmqctl stop_app` for the block, then `start_app` (always) and wait until it
    accepts AMQP connections again."""
    if not _has("rabbitmqctl"):
        raise RuntimeError("rabbitmqctl is not installed")
    stopped = _run(["rabbitmqctl", "stop_app"])
    try:
        if stopped.returncode != 0:
            raise RuntimeError(f"rabbitmqctl stop_app failed: {stopped.stderr.strip()}")
        yield
    finally:
        for _ in range(3):
            if _run(["rabbitmqctl", "start_app"]).returncode == 0:
                break
            time.sleep(2)
        _run(["rabbitmqctl", "await_startup"])
        wait_rabbitmq(url)


def rabbitmq_channels(local_ports: set[int]) -> int | None:
    """Channels of the connections whose client port is one of `local_ports`
    (`rabbitmqctl list_channels`; the management plugin is not enabled here). None when
    rabbitmqctl does not answer."""
    done = _run(["rabbitmqctl", "-q", "list_channels", "name"], timeout=30, quiet=True)
    if done.returncode != 0:
        return None
    count = 0
    for line in done.stdout.splitlines():
        # "127.0.0.1:43512 -> 127.0.0.1:5672 (1)"
        client = line.strip().split(" ", 1)[0]
        port = client.rpartition(":")[2]
        if port.isdigit() and int(port) in local_ports:
            count += 1
    return count


def rabbitmqctl_available() -> bool:
    return _has("rabbitmqctl")
