"""Structured JSON logging to stdout, one object per line, with the request id of the call."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from ocrmesh.platform.request_context import current_request_id
from ocrmesh.platform.telemetry import log_fields, tracing_enabled

# Attributes every LogRecord has; anything else was passed through `extra=` and is a field.
# uvicorn adds `color_message` (the message with ANSI colours): noise in a JSON line.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ts, level, logger, msg, request_id, extra fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            # Tells apart the processes of one service (AUTH_PROCESSES, GATEWAY_WORKERS, ...).
            "pid": os.getpid(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        if tracing_enabled():
            # trace_id/span_id: grep one trace across every process's log.
            entry.update(log_fields())
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # orjson: one line per call on every hot path; the stdlib encoder cost ~8% of a
        # GetCurrentUser under load. Values it cannot encode are written as str().
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # what orjson refuses outright (an int past 64 bits): the slow path
            return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON lines. Idempotent."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # What the JSON lines never show, not collected per record (the logging HOWTO's
    # "Optimization"): caller frame lookup, thread and process names.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # pika logs every connection step at INFO; keep its warnings.
    logging.getLogger("pika").setLevel(logging.WARNING)
