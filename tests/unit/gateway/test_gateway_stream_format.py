"""OCR stream events: JSON per event, framed as NDJSON or SSE by the Accept header."""

from __future__ import annotations

import json

import pytest

from gateway.ocr_events import (
    EVENT_STREAM,
    NDJSON,
    encode_ndjson,
    encode_sse,
    event_from_proto,
    negotiate_stream_format,
)
from gateway.schemas import ErrorEvent
from ocrmesh.ocr.v1 import ocr_pb2


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, NDJSON),
        ("", NDJSON),
        ("*/*", NDJSON),
        ("application/json", NDJSON),
        ("application/x-ndjson", NDJSON),
        ("text/event-stream", EVENT_STREAM),
        ("Text/Event-Stream", EVENT_STREAM),
        ("application/json, text/event-stream;q=0.9", EVENT_STREAM),
        ("text/event-stream;q=0", NDJSON),
    ],
)
def test_sse_only_when_the_accept_header_asks_for_it(accept: str | None, media_type: str) -> None:
    assert negotiate_stream_format(accept).media_type == media_type


def test_a_line_event_has_the_documented_fields() -> None:
    response = ocr_pb2.RecognizeResponse(
        line=ocr_pb2.Line(
            index=2,
            text="a line\nwith a newline",
            confidence=0.87654321,
            box=[
                ocr_pb2.Point(x=1, y=2),
                ocr_pb2.Point(x=3, y=2),
                ocr_pb2.Point(x=3, y=4),
                ocr_pb2.Point(x=1, y=4),
            ],
        )
    )
    event = event_from_proto(response)
    assert event is not None
    assert json.loads(encode_ndjson(event)) == {
        "type": "line",
        "index": 2,
        "block": 0,
        "text": "a line\nwith a newline",
        "confidence": 0.8765,
        "box": [[1, 2], [3, 2], [3, 4], [1, 4]],
    }


def test_each_frame_holds_exactly_one_event_even_when_text_has_newlines() -> None:
    event = event_from_proto(ocr_pb2.RecognizeResponse(line=ocr_pb2.Line(index=0, text="two\nlines")))
    assert event is not None
    ndjson = encode_ndjson(event)
    assert ndjson.startswith(b'{"type":"line",')  # a reader can dispatch on the first key
    assert ndjson.count(b"\n") == 1
    assert ndjson.endswith(b"\n")
    sse = encode_sse(event).decode()
    assert sse.startswith("event: line\ndata: {")
    assert sse.endswith("}\n\n")
    assert sse.count("\n") == 3


def test_started_and_completed_events() -> None:
    started = event_from_proto(
        ocr_pb2.RecognizeResponse(started=ocr_pb2.Started(engine="rapidocr", image_width=10, image_height=20))
    )
    completed = event_from_proto(
        ocr_pb2.RecognizeResponse(
            completed=ocr_pb2.Completed(full_text="a\nb", line_count=2, timings=ocr_pb2.Timings(total_ms=5))
        )
    )
    assert started is not None
    assert completed is not None
    assert json.loads(encode_ndjson(started)) == {
        "type": "started",
        "engine": "rapidocr",
        "image_width": 10,
        "image_height": 20,
    }
    body = json.loads(encode_ndjson(completed))
    assert body["type"] == "completed"
    assert body["line_count"] == 2
    assert body["timings"]["total_ms"] == 5


def test_an_event_kind_this_gateway_does_not_know_is_skipped() -> None:
    assert event_from_proto(ocr_pb2.RecognizeResponse()) is None


def test_error_event_shape() -> None:
    assert json.loads(encode_ndjson(ErrorEvent(status=504, detail="late"))) == {
        "type": "error",
        "status": 504,
        "detail": "late",
    }
