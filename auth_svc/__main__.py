"""`python -m auth_svc`: serve ocrmesh.auth.v1.AuthService until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import OperationalError

from auth_svc.app import create_app
from auth_svc.keys import KeyConfigError
from auth_svc.settings import AuthSettings
from ocrmesh.events import TopologyError
from ocrmesh.grpc_server import run_until_signalled
from ocrmesh.logs import configure_logging
from ocrmesh.settings import load_settings

log = logging.getLogger("auth_svc")


async def serve(settings: AuthSettings) -> None:
    server, port = create_app(settings)
    await server.start()
    log.info("auth_svc serving", extra={"port": port, "environment": settings.environment})
    await run_until_signalled(server, settings.shutdown_grace_seconds)


def main() -> None:
    settings = load_settings(AuthSettings)
    configure_logging("auth_svc", settings.log_level)
    try:
        asyncio.run(serve(settings))
    except KeyConfigError as exc:
        log.error("signing key configuration is wrong", extra={"error": str(exc)})
        raise SystemExit(2) from None
    except (OperationalError, TopologyError) as exc:
        log.error(
            "cannot start: a dependency is unreachable or misconfigured", extra={"error": str(exc)[:500]}
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
