"""OCR stream events: from ocr_svc's messages to JSON objects, framed as NDJSON or SSE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.schemas import (
    CompletedEvent,
    LineEvent,
    LineOut,
    OcrEvent,
    StartedEvent,
    TimingsOut,
)
from ocrmesh.ocr.v1 import ocr_pb2

NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"


def event_from_proto(response: ocr_pb2.RecognizeResponse) -> OcrEvent | None:
    """The REST event for one message of the Recognize stream (None for an empty message,
    which a newer ocr_svc could send for an event kind this gateway does not know)."""
    kind = response.WhichOneof("event")
    if kind == "started":
        started = response.started
        return StartedEvent(
            engine=started.engine, image_width=started.image_width, image_height=started.image_height
        )
    if kind == "line":
        return LineEvent(**LineOut.from_proto(response.line).model_dump())
    if kind == "completed":
        completed = response.completed
        return CompletedEvent(
            full_text=completed.full_text,
            line_count=completed.line_count,
            timings=TimingsOut.from_proto(completed.timings),
        )
    return None


def encode_ndjson(event: OcrEvent) -> bytes:
    """One JSON object on one line."""
    return event.model_dump_json().encode() + b"\n"


def encode_sse(event: OcrEvent) -> bytes:
    """One server-sent event, named after its type, with the JSON object as data (JSON text
    holds no raw newline, so a single `data:` line is always enough)."""
    return f"event: {event.type}\ndata: {event.model_dump_json()}\n\n".encode()


@dataclass(frozen=True)
class StreamFormat:
    media_type: str
    encode: Callable[[OcrEvent], bytes]


NDJSON_FORMAT = StreamFormat(NDJSON, encode_ndjson)
SSE_FORMAT = StreamFormat(EVENT_STREAM, encode_sse)


def negotiate_stream_format(accept: str | None) -> StreamFormat:
    """SSE when the Accept header names text/event-stream (with a non-zero q), NDJSON
    otherwise: NDJSON is the default for anything else, including */* and no header."""
    for item in (accept or "").split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if media_type.lower() != EVENT_STREAM:
            continue
        quality = next((p.partition("=")[2] for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return SSE_FORMAT
        except ValueError:
            return SSE_FORMAT
    return NDJSON_FORMAT
