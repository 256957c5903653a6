"""`python -m ocr_svc`: serve OcrService on OCR_PORT until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import sys

from ocr_svc.app import create_app
from ocr_svc.engines.base import EngineUnavailable
from ocr_svc.settings import OcrSettings
from ocrmesh.platform.grpc_server import run_until_signalled
from ocrmesh.platform.logs import configure_logging
from ocrmesh.platform.metrics import metrics_served
from ocrmesh.platform.processes import process_count, serve_in_processes
from ocrmesh.platform.settings import load_settings
from ocrmesh.platform.telemetry import tracing

log = logging.getLogger("ocr_svc")


async def serve(settings: OcrSettings) -> int:
    # In the serving process (a forked worker's own), before the server and channels exist.
    with tracing("ocr_svc"):
        return await _serve(settings)


async def _serve(settings: OcrSettings) -> int:
    app = create_app(settings)
    try:
        await app.start()
    except EngineUnavailable as exc:
        log.critical("cannot start the OCR engine", extra={"engine": settings.ocr_engine, "error": str(exc)})
        sys.stderr.write(f"ocr_svc: cannot start the {settings.ocr_engine} engine: {exc}\n")
        await app.stop(0)
        return 3
    await run_until_signalled(app.mesh, settings.shutdown_grace_seconds)
    await app.stop(settings.shutdown_grace_seconds)
    return 0


def main() -> int:
    settings = load_settings(OcrSettings)
    configure_logging("ocr_svc", settings.log_level)
    log.info(
        "starting",
        extra={
            "port": settings.ocr_port,
            "engine": settings.ocr_engine,
            "workers": settings.ocr_workers,
            "queue_size": settings.ocr_queue_size,
            "engine_threads": settings.engine_threads(),
            "processes": process_count(settings.ocr_processes),
        },
    )
    processes = process_count(settings.ocr_processes)
    # Served by this process: with several, the supervisor, which adds up its workers'.
    with metrics_served(settings.ocr_metrics_port, host=settings.ocr_host, processes=processes):
        return serve_in_processes(
            processes,
            lambda port: asyncio.run(serve(settings.model_copy(update={"ocr_port": port}))),
            host=settings.ocr_host,
            port=settings.ocr_port,
            name="ocr_svc",
            stop_timeout=settings.shutdown_grace_seconds + 10,
        )


if __name__ == "__main__":
    raise SystemExit(main())
