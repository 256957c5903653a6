"""ocr_svc configuration: environment variables only, validated at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ocrmesh.platform.processes import process_count
from ocrmesh.platform.settings import GrpcServerSettings, GrpcTarget
from ocrmesh.platform.units import MiB
from ocrmesh.rules.email_events.settings import EmailEventSettings
from ocrmesh.rules.endpoints import DEFAULT_AUTH_ADDR
from ocrmesh.rules.tokens import DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_ISSUER


def _cpu_count() -> int:
    return os.cpu_count() or 1


class OcrSettings(EmailEventSettings, GrpcServerSettings):
    """Environment variables of ocr_svc (names are the upper-cased field names)."""

    ocr_port: int = Field(default=50052, ge=0, le=65535)
    # Loopback unless told otherwise: compose and other machines set the service network.
    ocr_host: str = "127.0.0.1"
    # Prometheus `/metrics` on OCR_HOST:OCR_METRICS_PORT (every process's, added up); unset: none.
    ocr_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    ocr_engine: Literal["rapidocr", "keras"] = "rapidocr"
    # With rapidocr: who reads each detected line. ppocr: PP-OCR's recogniser (best on
    # screenshots and coloured text); tesseract: Tesseract's LSTM, about a quarter of the CPU
    # a line on dense scanned pages (docs/ocr.md). Its English model comes from
    # OCR_TESSDATA_DIR, TESSDATA_PREFIX or Debian's tesseract-ocr-eng; so do the models of
    # the other languages read (ocr_svc/languages.py: listed when their model is there).
    # auto (the default): tesseract where tesserocr and the English model are installed (the
    # image, `make up`), else ppocr; settled at start-up (`_settle_auto_recognizer`).
    ocr_recognizer: Literal["auto", "ppocr", "tesseract"] = "auto"
    # With rapidocr: who finds the lines of a page. ppocr: PP-OCR's DB detector (any script,
    # curved and rotated lines, text on pictures); tesseract: Tesseract's layout analysis,
    # about a fifth of the CPU on a printed page, Korean on joined glyphs (docs/ocr.md,
    # "Finding the lines"). auto (the default): tesseract where tesserocr and the English
    # model are installed, else ppocr.
    ocr_detector: Literal["auto", "ppocr", "tesseract"] = "auto"
    ocr_tessdata_dir: Path | None = None
    # Processes serving OCR_PORT together (SO_REUSEPORT); 0 = one per core. Each loads its
    # own engine, and every limit below (workers, queue, engine threads) is per process.
    ocr_processes: int = Field(default=1, ge=0, le=64)
    # Images recognised at the same time (engine calls run in this many threads).
    ocr_workers: int = Field(default_factory=_cpu_count, ge=1, le=64)
    # Calls allowed to wait for a worker; beyond workers + queue, RESOURCE_EXHAUSTED at once.
    ocr_queue_size: int = Field(default=8, ge=0, le=1024)
    # Calls one user may have in flight (per process, like the workers); the next is refused
    # RESOURCE_EXHAUSTED (HTTP 429 with Retry-After). 0 = no limit.
    ocr_max_calls_per_user: int = Field(default=2, ge=0, le=1024)
    ocr_max_image_bytes: int = Field(default=10 * MiB, ge=1, le=256 * MiB)
    ocr_max_pixels: int = Field(default=40_000_000, ge=1, le=1_000_000_000)
    # Pages of one document (PDF, multi-page TIFF) read at most; more: refused before any
    # page is read (TOO_MANY_PAGES).
    ocr_max_pages: int = Field(default=200, ge=1, le=10_000)
    # Pages one user may have in the documents they are reading at once (per process, like
    # OCR_MAX_CALLS_PER_USER): a call that would pass it is refused RESOURCE_EXHAUSTED once
    # its page count is known. 0 = no limit.
    ocr_max_pages_per_user: int = Field(default=400, ge=0, le=1_000_000)
    # Resolution PDF pages are rendered at (lowered for pages larger than Legal, never
    # below 150 dpi; ocr_svc/documents/model.py).
    ocr_pdf_dpi: float = Field(default=300.0, ge=72.0, le=600.0)
    # Turn pages upright (Tesseract's OSD) and straighten them (up to 10 degrees) before
    # detection.
    ocr_upright_pages: bool = True
    # Inference threads per engine call; 0 = cores / workers (at least 1), so that the
    # workers together do not oversubscribe the CPU. Engine calls run in cores / threads
    # threads (at least OCR_WORKERS): an image alone uses the cores the others leave idle.
    ocr_engine_threads: int = Field(default=0, ge=0, le=256)

    auth_addr: GrpcTarget = DEFAULT_AUTH_ADDR
    token_issuer: str = Field(default=DEFAULT_TOKEN_ISSUER, min_length=1)
    token_audience: str = Field(default=DEFAULT_TOKEN_AUDIENCE, min_length=1)

    # The queue topology must match the notifier's (same names, same retry delays).
    # "OCR completed" mails waiting for the broker; beyond this, new ones are dropped
    # (counted and logged).
    ocr_email_buffer_size: int = Field(default=1000, ge=1, le=1_000_000)
    # Seconds one publish attempt may wait for the broker's confirm before it is retried.
    ocr_email_publish_timeout: float = Field(default=5.0, gt=0, le=120)

    keras_ocr_cache_dir: Path | None = None
    keras_ocr_detector_weights: Path | None = None
    keras_ocr_recognizer_weights: Path | None = None
    keras_ocr_download: bool = False

    @model_validator(mode="before")
    @classmethod
    def _settle_auto_recognizer(cls, data: object) -> object:
        # Measured on this project's pages (docs/ocr.md, "Engines and languages"): on a dense
        # scanned page Tesseract's LSTM behind our detector reads the same text as PP-OCR's
        # recogniser in 0.4-0.8x the time; so it reads by default wherever it is installed.
        # Without it (or with keras) PP-OCR's, as before.
        if not isinstance(data, dict) or data.get("ocr_recognizer", "auto") != "auto":
            return data
        from ocr_svc.engines.tesseract_reader import installed_models

        tessdata = data.get("ocr_tessdata_dir")
        directory, _ = installed_models(Path(tessdata) if tessdata else None)
        rapidocr = data.get("ocr_engine", "rapidocr") == "rapidocr"
        return {**data, "ocr_recognizer": "tesseract" if rapidocr and directory is not None else "ppocr"}

    @model_validator(mode="after")
    def _recognizer_belongs_to_rapidocr(self) -> OcrSettings:
        if self.ocr_recognizer != "ppocr" and self.ocr_engine != "rapidocr":
            raise ValueError(
                f"OCR_RECOGNIZER={self.ocr_recognizer} reads lines the rapidocr engine detects; "
                f"OCR_ENGINE={self.ocr_engine} reads its own"
            )
        if self.ocr_detector == "tesseract" and self.ocr_engine != "rapidocr":
            raise ValueError(
                f"OCR_DETECTOR=tesseract finds lines for the rapidocr engine; OCR_ENGINE={self.ocr_engine} "
                "finds its own"
            )
        return self

    @field_validator("ocr_max_pixels", "ocr_max_image_bytes", mode="before")
    @classmethod
    def _whole_number_in_any_notation(cls, value: object) -> object:
        # Operators write limits like 40e6; accept that when it is a whole number.
        if isinstance(value, str):
            text = value.strip().replace("_", "")
            try:
                return int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    return value
                return int(number) if number.is_integer() else value
        return value

    def engine_threads(self) -> int:
        """Inference threads per engine call."""
        if self.ocr_engine_threads > 0:
            return self.ocr_engine_threads
        return max(1, _cpu_count() // self.ocr_workers)

    def engine_calls(self) -> int:
        """Engine calls that may run at once in this process: as many as fill its share of
        the cores (cores / OCR_PROCESSES) with `engine_threads()` threads each, and at
        least one per worker."""
        share = max(1, _cpu_count() // process_count(self.ocr_processes))
        return max(self.ocr_workers, share // self.engine_threads())

    def spread_threads(self) -> int:
        """Inference threads one image alone may detect with: this process's share of the
        cores (cores / OCR_PROCESSES), and at least `engine_threads()`."""
        share = max(1, _cpu_count() // process_count(self.ocr_processes))
        return max(self.engine_threads(), share)

    def max_receive_message_bytes(self) -> int:
        """The gRPC receive limit: an upload (image or document, Recognize's or
        RenderDocument's) of OCR_MAX_IMAGE_BYTES plus room for the rest of the request, so
        that a slightly oversized one gets our INVALID_ARGUMENT with a reason rather than
        gRPC's bare RESOURCE_EXHAUSTED."""
        return self.ocr_max_image_bytes + MiB
