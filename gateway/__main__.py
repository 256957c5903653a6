"""`python -m gateway`: serve the REST edge with uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from ocrmesh.logs import configure_logging
from ocrmesh.settings import load_settings


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        # Our JSON logging and our access log (with the request id), not uvicorn's.
        log_config=None,
        access_log=False,
        server_header=False,
        # On SIGTERM: stop accepting, let running requests (OCR streams) finish this long.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
