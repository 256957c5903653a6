"""Issue 27: auth_svc's readiness follows PostgreSQL, its liveness does not, and after an
outage the first calls succeed with no restart. A real auth_svc in-process whose
DATABASE_URL goes through a TCP proxy to the real PostgreSQL; the test cuts the proxy (every
connection reset, new ones refused: what a database restart or a lost network looks like
from auth_svc) and restores it. The check runs with its production interval and timeout."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from auth_svc.db import make_probe_engine
from auth_svc.health import DatabaseCheck, DatabaseHealth
from auth_svc.settings import AuthSettings
from harness.tcp_proxy import TcpProxy
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.platform.grpc_client import bearer_metadata
from tests.integration.auth.auth_support import Mailbox, RunningAuth, rpc_error
from tests.integration.auth.database_outage import (
    AUTH_SERVICE,
    RECOVERED_WITHIN,
    SEEN_WITHIN,
    auth_probe_services,
    health_status,
    proxied_database,
    seconds_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

log = logging.getLogger(__name__)
PASSWORD = "correct horse battery"


@pytest.fixture
def proxy_and_url(auth_settings: AuthSettings) -> Iterator[tuple[TcpProxy, str]]:
    with proxied_database(auth_settings.database_url) as found:
        yield found


@pytest.fixture
async def auth(
    auth_settings: AuthSettings, proxy_and_url: tuple[TcpProxy, str], mailbox: Mailbox
) -> AsyncIterator[RunningAuth]:
    settings = auth_settings.model_copy(update={"database_url": proxy_and_url[1]})
    running = await RunningAuth.start(settings)
    yield running
    await running.stop()


@pytest.fixture
async def auth_with_an_idle_relay(
    auth_settings: AuthSettings, proxy_and_url: tuple[TcpProxy, str], mailbox: Mailbox
) -> AsyncIterator[RunningAuth]:
    """auth_svc whose outbox relay polls once a minute. (A relay polling the write pool
    meets a dead connection first, and SQLAlchemy then drops the whole pool: that would hide
    whether the database check renews the pools.)"""
    update = {"database_url": proxy_and_url[1], "outbox_poll_seconds": 60.0}
    running = await RunningAuth.start(auth_settings.model_copy(update=update))
    yield running
    await running.stop()


async def current_user(auth: RunningAuth, token: str) -> auth_pb2.User:
    reply = await auth.stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(token), timeout=10
    )
    return reply.user


async def test_readiness_follows_the_database_liveness_does_not_and_first_calls_after_succeed(
    auth: RunningAuth,
    proxy_and_url: tuple[TcpProxy, str],
    mailbox: Mailbox,
    email: str,
) -> None:
    proxy = proxy_and_url[0]
    database = auth.server.database
    assert database is not None
    probes = auth_probe_services()
    # What deploy/k8s asks: liveness and startup the server, readiness the service.
    assert probes == {"startupProbe": "", "livenessProbe": "", "readinessProbe": AUTH_SERVICE}
    await auth.register_verified(mailbox, email, PASSWORD)
    token = await auth.login(email, PASSWORD)
    assert (await current_user(auth, token)).email == email  # both pools hold connections now
    assert await health_status(auth.channel, AUTH_SERVICE) == "SERVING"

    proxy.block()
    cut = time.monotonic()
    liveness_seen: set[str] = set()

    async def not_ready() -> bool:
        liveness_seen.add(await health_status(auth.channel, probes["livenessProbe"]))
        return await health_status(auth.channel, probes["readinessProbe"]) == "NOT_SERVING"

    seen_down = await seconds_until(not_ready, SEEN_WITHIN, "NOT_SERVING after the cut", since=cut)
    # During the outage calls fail fast with a status a client retries on, never hang.
    started = time.monotonic()
    refused = await rpc_error(lambda: auth.stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD)))
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    me_refused = await rpc_error(lambda: current_user(auth, token))
    assert me_refused.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 12  # two calls, each bounded by the connect timeout
    liveness_seen.add(await health_status(auth.channel, probes["livenessProbe"]))
    assert liveness_seen == {"SERVING"}, "liveness must not fail because PostgreSQL is gone"

    replaced_before = database.pools_replaced
    proxy.unblock()
    restored = time.monotonic()

    async def ready() -> bool:
        return await health_status(auth.channel, probes["readinessProbe"]) == "SERVING"

    seen_up = await seconds_until(ready, RECOVERED_WITHIN, "SERVING after the restore", since=restored)
    assert database.pools_replaced > replaced_before
    # Ready means the pools were renewed: the first read and the first write both succeed.
    assert (await current_user(auth, token)).email == email
    me_answered = time.monotonic() - restored
    assert await auth.login(email, PASSWORD)
    login_answered = time.monotonic() - restored
    assert login_answered < RECOVERED_WITHIN
    measured = {
        "not_serving_after_cut_s": round(seen_down, 2),
        "serving_after_restore_s": round(seen_up, 2),
        "me_after_restore_s": round(me_answered, 2),
        "login_after_restore_s": round(login_answered, 2),
    }
    log.info("database outage measured: %s", measured, extra=measured)


async def test_a_restart_quicker_than_a_check_still_renews_the_pools(
    auth_with_an_idle_relay: RunningAuth,
    proxy_and_url: tuple[TcpProxy, str],
    mailbox: Mailbox,
    email: str,
) -> None:
    auth, proxy = auth_with_an_idle_relay, proxy_and_url[0]
    await auth.register_verified(mailbox, email, PASSWORD)
    token = await auth.login(email, PASSWORD)
    assert (await current_user(auth, token)).email == email
    database = auth.server.database
    assert database is not None
    replaced_before = database.pools_replaced

    # Every connection ends, new ones are accepted at once: a restart between two checks.
    proxy.drop_connections()
    dropped = time.monotonic()

    async def renewed() -> bool:
        return database.pools_replaced > replaced_before

    seen = await seconds_until(renewed, SEEN_WITHIN, "the pools renewed after the drop", since=dropped)
    assert await health_status(auth.channel, AUTH_SERVICE) == "SERVING"
    # A write on a connection from before the drop would answer UNAVAILABLE: none is left.
    assert await auth.login(email, PASSWORD)
    assert (await current_user(auth, token)).email == email
    measured = {"renewed_after_drop_s": round(seen, 2)}
    log.info("pools renewed after a quick restart: %s", measured, extra=measured)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung database host)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


async def test_a_database_that_never_answers_is_not_ready_within_the_timeout(silent_server: int) -> None:
    check = DatabaseCheck(interval_seconds=60, timeout_seconds=1.0)
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{silent_server}/ocrmesh"
    health = DatabaseHealth(make_probe_engine(url, timeout_seconds=check.timeout_seconds), (), check)
    started = time.monotonic()
    assert await health.check_once() is False
    assert time.monotonic() - started < check.timeout_seconds + 1
    assert health.answering is False
    # The check still stuck in the network is waited for again, not doubled.
    assert await health.check_once() is False
    await health.stop()
