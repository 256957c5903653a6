"""`python -m auth_svc`: serve ocrmesh.auth.v1.AuthService until SIGTERM/SIGINT.

The start-up is `ocrmesh.platform.service_main`'s; here is what is auth_svc's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from auth_svc.app import AuthServer, create_app
from auth_svc.keys import KeyConfigError
from auth_svc.settings import AuthSettings
from ocrmesh.platform.service_main import ExitCode, GrpcService, Listening, StartFailure, run_grpc_service
from ocrmesh.rules.email_events import TopologyError

log = logging.getLogger("auth_svc")


@dataclass
class _AuthApp:
    """auth_svc as the start-up drives it: its server is the whole app (stopping the server
    stops the outbox relay and closes the pools and the database engines)."""

    mesh: AuthServer
    port: int
    environment: str

    async def start(self) -> None:
        await self.mesh.start()
        log.info("auth_svc serving", extra={"port": self.port, "environment": self.environment})

    async def stop(self, grace: float) -> None:
        pass  # nothing lives beyond the server


def _build(settings: AuthSettings) -> _AuthApp:
    server, port = create_app(settings)
    return _AuthApp(server, port, settings.environment)


def _listening(settings: AuthSettings) -> Listening:
    return Listening(
        host=settings.auth_host,
        port=settings.auth_port,
        port_setting="auth_port",
        metrics_port=settings.auth_metrics_port,
        processes=settings.auth_processes,
    )


def _bad_keys(settings: AuthSettings, exc: Exception) -> None:
    log.error("signing key configuration is wrong", extra={"error": str(exc)})


def _dependency_unreachable(settings: AuthSettings, exc: Exception) -> None:
    log.error("cannot start: a dependency is unreachable or misconfigured", extra={"error": str(exc)[:500]})


AUTH_SVC = GrpcService(
    name="auth_svc",
    settings=AuthSettings,
    listening=_listening,
    create_app=_build,
    start_failures=[
        StartFailure((KeyConfigError,), ExitCode.CONFIGURATION, _bad_keys),
        StartFailure(
            (OperationalError, TopologyError), ExitCode.DEPENDENCY_UNREACHABLE, _dependency_unreachable
        ),
    ],
)


def main() -> int:
    return run_grpc_service(AUTH_SVC)


if __name__ == "__main__":
    raise SystemExit(main())
