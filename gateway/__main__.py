"""`python -m gateway`: serve the REST edge with uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from ocrmesh.logs import configure_logging
from ocrmesh.settings import load_settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


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
        # grpc.aio is built and tested on the standard asyncio loop (the gRPC services use
        # it too); measured here, uvloop made no difference that stood out of the noise.
        loop="asyncio",
        # On SIGTERM: stop accepting, let running requests (OCR streams) finish this long.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
    )
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal with the handlers that were
    # there before it: make that a clean exit (0) rather than death by signal or a
    # KeyboardInterrupt traceback, like the gRPC services after their graceful stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
