"""The one OCR event model (ocrmesh.rules.ocr_events): ocr_svc's messages become the
documented JSON events, `type` first, and JSON reads back into the same events, leniently
for what a newer server adds."""

from __future__ import annotations

import json

import pytest

from ocrmesh.ocr.v1 import ocr_pb2
from ocrmesh.rules.ocr_events import (
    EVENT_TYPES,
    CompletedEvent,
    ErrorEvent,
    LineEvent,
    OcrEvent,
    PageEvent,
    StartedEvent,
    Timings,
    UnreadableEvent,
    event_from_json,
    event_from_proto,
    event_json,
)

BOX = [ocr_pb2.Point(x=1, y=2), ocr_pb2.Point(x=3, y=2), ocr_pb2.Point(x=3, y=4), ocr_pb2.Point(x=1, y=4)]
TIMINGS = {"decode_ms": 1.0, "detect_ms": 2.0, "recognize_ms": 3.0, "total_ms": 6.0}
EVERY_KIND: list[OcrEvent] = [
    StartedEvent(engine="rapidocr", image_width=640, image_height=480),
    PageEvent(page=1, width=640, height=480, rotation=90, skew=-1.5, source="ocr", dpi=300.0),
    LineEvent(index=0, block=1, text="Hello", confidence=0.98, box=[(1, 2), (3, 2), (3, 4), (1, 4)]),
    CompletedEvent(full_text="Hello", line_count=1, timings=Timings(**TIMINGS)),
    ErrorEvent(status=504, detail="the ocr service did not answer in time"),
]


def test_a_line_message_becomes_the_documented_line_event() -> None:
    response = ocr_pb2.RecognizeResponse(
        line=ocr_pb2.Line(
            index=2,
            block=1,
            text="a line\nwith a newline",
            confidence=0.87654321,
            box=BOX,
            page=3,
            words=[ocr_pb2.Word(text="a", confidence=0.5, box=BOX)],
        )
    )
    event = event_from_proto(response)
    assert isinstance(event, LineEvent)
    assert list(json.loads(event_json(event)).items()) == [
        ("type", "line"),
        ("index", 2),
        ("block", 1),
        ("text", "a line\nwith a newline"),
        ("confidence", 0.8765),
        ("box", [[1, 2], [3, 2], [3, 4], [1, 4]]),
        ("page", 3),
        ("words", [{"text": "a", "confidence": 0.5, "box": [[1, 2], [3, 2], [3, 4], [1, 4]]}]),
    ]


def test_a_line_message_of_an_older_server_is_on_page_one_without_words() -> None:
    event = event_from_proto(ocr_pb2.RecognizeResponse(line=ocr_pb2.Line(index=0, text="x", box=BOX)))
    assert isinstance(event, LineEvent)
    assert (event.page, event.words) == (1, [])


def test_a_page_message_becomes_the_documented_page_event() -> None:
    event = event_from_proto(
        ocr_pb2.RecognizeResponse(
            page=ocr_pb2.Page(
                page=2, width=2480, height=3508, rotation=180, skew=-3.456, source="text_layer", dpi=300
            )
        )
    )
    assert isinstance(event, PageEvent)
    assert json.loads(event_json(event)) == {
        "type": "page",
        "page": 2,
        "width": 2480,
        "height": 3508,
        "rotation": 180,
        "skew": -3.46,
        "source": "text_layer",
        "dpi": 300.0,
    }


def test_started_and_completed_messages_become_their_events() -> None:
    started = event_from_proto(
        ocr_pb2.RecognizeResponse(started=ocr_pb2.Started(engine="rapidocr", image_width=10, image_height=20))
    )
    completed = event_from_proto(
        ocr_pb2.RecognizeResponse(
            completed=ocr_pb2.Completed(full_text="a\nb", line_count=2, timings=ocr_pb2.Timings(**TIMINGS))
        )
    )
    assert started is not None
    assert completed is not None
    assert json.loads(event_json(started)) == {
        "type": "started",
        "engine": "rapidocr",
        "image_width": 10,
        "image_height": 20,
        "page_count": 1,
        "document_format": "",
    }
    assert json.loads(event_json(completed)) == {
        "type": "completed",
        "full_text": "a\nb",
        "line_count": 2,
        "timings": TIMINGS,
        "page_count": 1,
    }


def test_a_message_of_a_kind_this_code_does_not_know_is_no_event() -> None:
    assert event_from_proto(ocr_pb2.RecognizeResponse()) is None


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda event: event.type)
def test_every_event_is_one_line_of_json_with_type_first_and_reads_back_the_same(event: OcrEvent) -> None:
    text = event_json(event)
    assert "\n" not in text
    assert text.startswith(f'{{"type":"{event.type}",')  # a reader can dispatch on the first key
    assert event_from_json(text) == event
    assert event_from_json(text.encode()) == event


def test_the_event_types_are_the_five_documented_ones() -> None:
    assert sorted(EVENT_TYPES) == ["completed", "error", "line", "page", "started"]


def test_a_newer_servers_fields_are_ignored_and_its_new_event_types_skipped() -> None:
    line = event_from_json(b'{"type":"line","index":0,"text":"t","confidence":1,"words":[],"lang":"en"}')
    assert line == LineEvent(index=0, text="t", confidence=1.0)
    assert event_from_json(b'{"type": "figure", "number": 1}') is None
    assert event_from_json(b"") is None
    assert event_from_json(b"  \r") is None


def test_an_older_servers_events_without_block_box_or_timings_still_read() -> None:
    assert event_from_json(b'{"type":"line","index":3,"text":"t","confidence":0.5}') == LineEvent(
        index=3, block=0, text="t", confidence=0.5, box=[]
    )
    completed = event_from_json(b'{"type":"completed","full_text":"","line_count":0}')
    assert isinstance(completed, CompletedEvent)
    assert completed.timings.total_ms == 0.0


@pytest.mark.parametrize(
    "garbage",
    [b"<html>", b'{"type": "line"}', b"[1, 2]", b'"line"', b'{"type":"error","status":"x","detail":""}'],
)
def test_what_is_not_a_documented_event_is_unreadable(garbage: bytes) -> None:
    with pytest.raises(UnreadableEvent):
        event_from_json(garbage)
