"""The OCR stream's HTTP framing: each event (ocrmesh.rules.ocr_events, the one model and
its JSON) as an NDJSON line or a server-sent event, chosen by the Accept header."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ocrmesh.rules.ocr_events import OcrEvent, event_json

NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"


def encode_ndjson(event: OcrEvent) -> bytes:
    """One JSON object on one line."""
    return event_json(event).encode() + b"\n"


def encode_sse(event: OcrEvent) -> bytes:
    """One server-sent event, named after its type, with the JSON object as data (a single
    `data:` line: the JSON has no raw newline)."""
    return f"event: {event.type}\ndata: {event_json(event)}\n\n".encode()


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
