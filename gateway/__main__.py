"""`python -m gateway`: serve the REST edge with uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from gateway.app import create_app
from gateway.client_limits import GuardedServerConfig
from gateway.settings import GatewaySettings
from ocrmesh.platform.logs import configure_logging
from ocrmesh.platform.metrics import multiprocess_values
from ocrmesh.platform.processes import process_count
from ocrmesh.platform.settings import load_settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def create_worker_app() -> FastAPI:
    """The app of one of several uvicorn worker processes (GATEWAY_WORKERS > 1): each is a
    fresh interpreter, so it reads the settings and sets up logging itself."""
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level)
    return create_app(settings)


def _tcp_listener(config: uvicorn.Config) -> socket.socket:
    """uvicorn's listening socket, marked IPPROTO_TCP. `Config.bind_socket` leaves proto at
    0, and asyncio sets TCP_NODELAY only on accepted sockets that say IPPROTO_TCP, so every
    keep-alive response would wait ~40 ms for a delayed ACK (Kludex/uvicorn#3149)."""
    bound = config.bind_socket()
    return socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())


def server_config(settings: GatewaySettings) -> uvicorn.Config:
    """uvicorn's configuration for `settings`: one process, or a supervisor of workers."""
    workers = process_count(settings.gateway_workers)
    return GuardedServerConfig(
        # Several workers: uvicorn's supervisor starts each with this factory, restarts one
        # that dies, and on SIGTERM stops them all gracefully.
        "gateway.__main__:create_worker_app" if workers > 1 else create_app(settings),
        factory=workers > 1,
        workers=workers,
        host=settings.gateway_host,
        port=settings.gateway_port,
        # Our JSON logging and our access log (with the request id), not uvicorn's.
        log_config=None,
        access_log=False,
        server_header=False,
        # Behind a proxy that strips a path prefix: the prefix, for /docs and OpenAPI.
        root_path=settings.gateway_root_path,
        # grpc.aio is built and tested on the standard asyncio loop (the gRPC services use
        # it too); measured here, uvloop made no difference that stood out of the noise.
        loop="asyncio",
        # On SIGTERM: stop accepting, let running requests (OCR streams) finish this long.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
        # Slow and greedy clients (docs/gateway.md, "Limits"): idle keep-alive connections
        # closed, connections and requests per process capped (503 past it), headers
        # within a deadline (408), connections per client address capped (429).
        timeout_keep_alive=settings.gateway_keepalive_timeout_seconds,
        # The client address is the TCP peer unless GATEWAY_TRUSTED_PROXIES say otherwise
        # (gateway.client_limits.forwarded_client); uvicorn's own X-Forwarded-For handling
        # would trust 127.0.0.1 (FORWARDED_ALLOW_IPS) whatever those settings say.
        proxy_headers=False,
        limit_concurrency=settings.gateway_max_connections,
        header_timeout=settings.gateway_header_timeout_seconds,
        max_connections_per_client=settings.gateway_max_connections_per_client,
    )


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level)
    config = server_config(settings)
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal with the handlers that were
    # there before it: make that a clean exit (0) rather than death by signal or a
    # KeyboardInterrupt traceback, like the gRPC services after their graceful stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    if config.workers > 1:
        # Each worker (a fresh interpreter) keeps its metric values in files of this run's
        # directory, and whichever answers GET /metrics adds up all of them.
        with multiprocess_values(config.workers):
            Multiprocess(config, sockets=[_tcp_listener(config)]).run()
    else:
        uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
