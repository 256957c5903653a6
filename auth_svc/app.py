"""Wiring: real adapters (PostgreSQL, RabbitMQ, keys) into the use cases and the gRPC server.

`create_app(settings)` is what `python -m auth_svc` runs and what tests call with port 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from grpc_health.v1 import health_pb2
from sqlalchemy import Engine

import ocrmesh.platform.database
from auth_svc import domain
from auth_svc.db import MIGRATIONS, make_engine, make_probe_engine, make_session_factory
from auth_svc.hashing_pool import BoundedPool
from auth_svc.health import DatabaseCheck, DatabaseHealth
from auth_svc.keys import TokenSigner, load_signer
from auth_svc.outbox import OutboxRelay
from auth_svc.passwords import Argon2Parameters, PasswordHasher
from auth_svc.repository import AuthRepository
from auth_svc.servicer import AuthServicer
from auth_svc.settings import AuthSettings
from auth_svc.throttles import Throttles
from auth_svc.use_cases import AuthContext, CodePolicy, UseCases
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.grpc_server import HostedService, MeshServer, create_server
from ocrmesh.platform.memory import return_large_buffers_to_the_os
from ocrmesh.platform.telemetry import instrument_engines
from ocrmesh.platform.thread_pools import started_pool
from ocrmesh.rules.email_events import EmailPublisher
from ocrmesh.rules.tokens import PublicKeyLike, RevocationFetcher, Revocations, TokenVerifier

log = logging.getLogger(__name__)

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


@dataclass
class AuthServer(MeshServer):
    """The gRPC server plus what lives and dies with it: the outbox relay, the publisher,
    the worker threads, the connection pools and the database check.

    Health: "" (liveness) follows the server alone; the hosted service (readiness) is
    SERVING only while the server serves and the database answers (`auth_svc.health`)."""

    use_cases: UseCases | None = None
    relay: OutboxRelay | None = None
    publisher: EmailPublisher | None = None
    executor: ThreadPoolExecutor | None = None
    hashing: BoundedPool | None = None
    engines: tuple[Engine, ...] = ()
    database: DatabaseHealth | None = None
    _serving: bool = field(default=False, init=False)

    async def start(self, *, serving: bool = True) -> None:
        await super().start(serving=serving)
        if self.relay is not None:
            self.relay.start()
        if self.database is not None:
            self.database.start(self._database_answers)

    async def set_serving(self, serving: bool) -> None:
        self._serving = serving
        await super().set_serving(serving)
        if serving and self.database is not None and not self.database.answering:
            await self._set_services(serving=False)

    async def _database_answers(self, answering: bool) -> None:
        if self._serving:
            await self._set_services(serving=answering)

    async def _set_services(self, *, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self.service_names:  # never "": liveness must not follow the database
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        if self.database is not None:
            await self.database.stop()
        await super().stop(grace)
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        if self.publisher is not None:
            self.publisher.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        if self.hashing is not None:
            self.hashing.shutdown(wait=True)
        for engine in self.engines:
            engine.dispose()


def prepare_database(settings: AuthSettings, engine: Engine, *, wait_seconds: float = 30.0) -> None:
    """Create the database if allowed and missing, then apply migrations. PostgreSQL that is
    still starting (compose, `make up`) is waited for up to `wait_seconds`."""
    ocrmesh.platform.database.prepare_database(
        settings.database_url,
        engine,
        MIGRATIONS,
        create=settings.may_create_database,
        wait_seconds=wait_seconds,
    )


def signer_for(settings: AuthSettings) -> TokenSigner:
    """The token signer `settings` describe (key file, extra public keys, dev key generation)."""
    return load_signer(
        signing_key_file=settings.auth_signing_key_file,
        extra_public_key_files=settings.auth_extra_public_key_files,
        key_dir=settings.auth_key_dir,
        may_generate=settings.may_generate_key,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl_seconds=settings.token_ttl_seconds,
    )


def local_verifier(
    signer: TokenSigner, settings: AuthSettings, revocations: RevocationFetcher | None = None
) -> TokenVerifier:
    """The shared verifier, fed from this process's own key list (no call to itself) and,
    when given, the revocations read from the database (refreshed every second)."""

    async def own_keys() -> Sequence[PublicKeyLike]:
        return signer.public_keys()

    return TokenVerifier(
        own_keys,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        min_refetch_interval=0,
        revocations=revocations,
        revocation_max_age=1.0,
    )


def create_app(
    settings: AuthSettings,
    *,
    database_wait_seconds: float = 30.0,
    new_code: Callable[[], str] = domain.new_code,
    database_check: DatabaseCheck | None = None,
) -> tuple[AuthServer, int]:
    """Build auth_svc: keys loaded, database migrated, server bound (not started).
    `new_code` makes verification codes (tests pin it; production uses `secrets`);
    `database_check`: how often readiness asks the database (`auth_svc.health`)."""
    signer = signer_for(settings)
    # Transactions come from both pools of threads: the workers and the hashing threads.
    engine = make_engine(settings.database_url, pool_size=settings.auth_workers + settings.auth_hash_workers)
    try:
        prepare_database(settings, engine, wait_seconds=database_wait_seconds)
    except BaseException:
        engine.dispose()
        raise
    sessions = make_session_factory(engine)
    reads = make_engine(settings.database_url, pool_size=settings.auth_workers, autocommit=True)
    instrument_engines(engine, reads)  # tracing on: a span per statement
    publisher = EmailPublisher(
        settings.rabbitmq_url,
        settings.topology,
        confirm_timeout=settings.outbox_publish_timeout_seconds,
        connection_name=f"auth_svc-outbox-{socket.gethostname()}-{os.getpid()}",
    )
    relay = OutboxRelay(
        sessions,
        publisher,
        poll_seconds=settings.outbox_poll_seconds,
        batch_size=settings.outbox_batch_size,
        publish_timeout=settings.outbox_publish_timeout_seconds,
    )
    throttle_policies = Throttles.defaults(
        base_delay=settings.throttle_base_delay_seconds,
        lock_seconds=settings.throttle_lock_seconds,
        login_failures_per_account=settings.login_max_failures_per_account,
        login_failures_per_client=settings.login_max_failures_per_client,
        code_failures_per_hour=settings.otp_max_failures_per_hour,
        code_lock_seconds=settings.otp_lock_seconds,
        resend_cooldown_seconds=settings.otp_resend_cooldown_seconds,
        code_requests_per_address=settings.otp_max_requests_per_hour,
    )
    context = AuthContext(
        AuthRepository(sessions, reads=reads),
        PasswordHasher(
            Argon2Parameters(
                memory_kib=settings.argon2_memory_kib,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
            )
        ),
        signer,
        code_policy=CodePolicy(
            ttl_seconds=settings.otp_ttl_seconds,
            resend_cooldown_seconds=settings.otp_resend_cooldown_seconds,
            max_attempts=settings.otp_max_attempts,
        ),
        password_min_length=settings.password_min_length,
        on_email_queued=relay.nudge,
        new_code=new_code,
        throttle_policies=throttle_policies,
        unverified_ttl_seconds=settings.unverified_account_ttl_seconds,
    )
    use_cases = UseCases.of(context)
    relay.housekeeping = use_cases.housekeeping.purge_expired
    # Argon2's working memory (19 MiB a hash) goes back to the OS after each hash, instead of
    # staying on malloc's heaps as a late, random step of RSS (ocrmesh/platform/memory.py).
    return_large_buffers_to_the_os()
    executor = started_pool(settings.auth_workers, "auth-worker")
    hashing = BoundedPool(settings.auth_hash_workers, settings.auth_hash_queue)

    async def revocations() -> Revocations:
        return await asyncio.get_running_loop().run_in_executor(executor, use_cases.sessions.revocations)

    verifier = local_verifier(signer, settings, revocations)
    servicer = AuthServicer(use_cases, signer, verifier, executor, hashing)
    check = database_check or DatabaseCheck()
    mesh, port = create_server(
        [HostedService.of(servicer, auth_pb2_grpc.add_AuthServiceServicer_to_server, SERVICE_NAME)],
        port=settings.auth_port,
        host=settings.auth_host,
        tls=settings.grpc_tls,
        max_connection_age_s=settings.grpc_max_connection_age_seconds,
        max_connection_age_grace_s=settings.grpc_max_connection_age_grace_seconds,
    )
    server = AuthServer(
        server=mesh.server,
        health=mesh.health,
        service_names=mesh.service_names,
        use_cases=use_cases,
        relay=relay,
        publisher=publisher,
        executor=executor,
        hashing=hashing,
        engines=(engine, reads),
        database=DatabaseHealth(
            make_probe_engine(settings.database_url, timeout_seconds=check.timeout_seconds),
            pools=(engine, reads),
            check=check,
        ),
    )
    return server, port
