"""`python -m ocr_svc`: serve OcrService on OCR_PORT until SIGTERM/SIGINT.

The start-up is `ocrmesh.platform.service_main`'s; here is what is ocr_svc's own.
"""

from __future__ import annotations

import logging
import sys

from ocr_svc.app import create_app
from ocr_svc.engines.base import EngineUnavailable
from ocr_svc.settings import OcrSettings
from ocrmesh.platform.service_main import ExitCode, GrpcService, Listening, StartFailure, run_grpc_service

log = logging.getLogger("ocr_svc")


def _listening(settings: OcrSettings) -> Listening:
    return Listening(
        host=settings.ocr_host,
        port=settings.ocr_port,
        port_setting="ocr_port",
        metrics_port=settings.ocr_metrics_port,
        processes=settings.ocr_processes,
    )


def _announce(settings: OcrSettings, processes: int) -> None:
    log.info(
        "starting",
        extra={
            "port": settings.ocr_port,
            "engine": settings.ocr_engine,
            "workers": settings.ocr_workers,
            "queue_size": settings.ocr_queue_size,
            "engine_threads": settings.engine_threads(),
            "processes": processes,
        },
    )


def _engine_unavailable(settings: OcrSettings, exc: Exception) -> None:
    log.critical("cannot start the OCR engine", extra={"engine": settings.ocr_engine, "error": str(exc)})
    # Also on stderr, which a person starting it by hand reads: what is missing and where.
    sys.stderr.write(f"ocr_svc: cannot start the {settings.ocr_engine} engine: {exc}\n")


OCR_SVC = GrpcService(
    name="ocr_svc",
    settings=OcrSettings,
    listening=_listening,
    create_app=create_app,
    start_failures=[StartFailure((EngineUnavailable,), ExitCode.ENGINE_UNAVAILABLE, _engine_unavailable)],
    announce=_announce,
    # Decoders, PDF rendering and the engines are native code reading untrusted documents:
    # a crash there ends one worker's streams, and the supervisor starts a new worker.
    isolate_crashes=True,
)


def main() -> int:
    return run_grpc_service(OCR_SVC)


if __name__ == "__main__":
    raise SystemExit(main())
