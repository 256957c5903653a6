"""`python -m auth_svc`: serve ocrmesh.auth.v1.AuthService until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import OperationalError

from auth_svc.app import create_app
from auth_svc.keys import KeyConfigError
from auth_svc.settings import AuthSettings
from ocrmesh.platform.grpc_server import run_until_signalled
from ocrmesh.platform.logs import configure_logging
from ocrmesh.platform.metrics import metrics_served
from ocrmesh.platform.processes import process_count, serve_in_processes
from ocrmesh.platform.settings import load_settings
from ocrmesh.platform.telemetry import tracing
from ocrmesh.rules.email_events import TopologyError

log = logging.getLogger("auth_svc")


async def serve(settings: AuthSettings) -> None:
    # In the serving process (a forked worker's own), before the server and engines exist.
    with tracing("auth_svc"):
        server, port = create_app(settings)
        await server.start()
        log.info("auth_svc serving", extra={"port": port, "environment": settings.environment})
        await run_until_signalled(server, settings.shutdown_grace_seconds)


def serve_on(settings: AuthSettings, port: int) -> int:
    """One auth_svc process on `port`, until signalled: its exit code."""
    try:
        asyncio.run(serve(settings.model_copy(update={"auth_port": port})))
    except KeyConfigError as exc:
        log.error("signing key configuration is wrong", extra={"error": str(exc)})
        return 2
    except (OperationalError, TopologyError) as exc:
        log.error(
            "cannot start: a dependency is unreachable or misconfigured", extra={"error": str(exc)[:500]}
        )
        return 1
    return 0


def main() -> int:
    settings = load_settings(AuthSettings)
    configure_logging("auth_svc", settings.log_level)
    processes = process_count(settings.auth_processes)
    # Served by this process: with several, the supervisor, which adds up its workers'.
    with metrics_served(settings.auth_metrics_port, host=settings.auth_host, processes=processes):
        return serve_in_processes(
            processes,
            lambda port: serve_on(settings, port),
            host=settings.auth_host,
            port=settings.auth_port,
            name="auth_svc",
            stop_timeout=settings.shutdown_grace_seconds + 10,
        )


if __name__ == "__main__":
    raise SystemExit(main())
