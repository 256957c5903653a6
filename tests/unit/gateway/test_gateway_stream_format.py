"""OCR stream framing: each event (ocrmesh.rules.ocr_events) as an NDJSON line or a
server-sent event, chosen by the Accept header."""

from __future__ import annotations

import json

import pytest

from gateway.ocr_events import EVENT_STREAM, NDJSON, encode_ndjson, encode_sse, negotiate_stream_format
from gateway.schemas import OcrResultOut
from ocrmesh.rules.ocr_events import ErrorEvent, LineEvent, StartedEvent, Timings, event_json


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


def test_each_frame_holds_exactly_one_event_even_when_text_has_newlines() -> None:
    event = LineEvent(index=0, text="two\nlines", confidence=0.5)
    ndjson = encode_ndjson(event)
    assert ndjson.startswith(b'{"type":"line",')  # a reader can dispatch on the first key
    assert ndjson.count(b"\n") == 1
    assert ndjson.endswith(b"\n")
    sse = encode_sse(event).decode()
    assert sse.startswith("event: line\ndata: {")
    assert sse.endswith("}\n\n")
    assert sse.count("\n") == 3


def test_error_event_shape() -> None:
    assert json.loads(encode_ndjson(ErrorEvent(status=504, detail="late"))) == {
        "type": "error",
        "status": 504,
        "detail": "late",
    }


def test_an_sse_frame_carries_the_same_json_as_an_ndjson_line() -> None:
    event = StartedEvent(engine="rapidocr", image_width=10, image_height=20)
    assert encode_ndjson(event) == f"{event_json(event)}\n".encode()
    assert encode_sse(event) == f"event: started\ndata: {event_json(event)}\n\n".encode()


def test_the_ocr_results_lines_are_the_line_events_without_their_type() -> None:
    line = LineEvent(index=0, block=1, text="Hello", confidence=0.5, box=[(1, 2)])
    result = OcrResultOut(
        user_id="u",
        user_name="Ada",
        user_email="ada@example.com",
        ocr_text="Hello",
        lines=[line],
        engine="fake",
        image_width=10,
        image_height=10,
        timings=Timings(total_ms=5),
    )
    assert result.model_dump(mode="json")["lines"] == [
        {"index": 0, "block": 1, "text": "Hello", "confidence": 0.5, "box": [[1, 2]], "page": 1, "words": []}
    ]
