"""The OCR stream's events, once: what ocr_svc's `RecognizeResponse` messages mean as JSON,
for everyone who carries or reads them (the gateway's `/ocr` result and its NDJSON/SSE
stream, the CLI over REST or gRPC, the web page; docs/gateway.md, "The OCR stream").

On the wire each event is one JSON object, `type` first (a reader can dispatch on the
first key), then the event's fields in the order declared here:

    {"type":"started","engine":...,"image_width":...,"image_height":...,"page_count":...,
     "document_format":...}
    {"type":"page","page":...,"width":...,"height":...,"rotation":...,"skew":...,
     "source":...,"dpi":...}
    {"type":"line","index":...,"block":...,"text":...,"confidence":...,"box":[[x,y],...],
     "page":...,"words":[{"text":...,"confidence":...,"box":[[x,y],...]},...]}
    {"type":"completed","full_text":...,"line_count":...,"timings":{...},"page_count":...}
    {"type":"error","status":...,"detail":...}

A document's stream is `started`, then per page in order a `page` event and that page's
lines, then `completed`. A new kind of event is one more `_Event` subclass here, one more
member of `OcrEvent` and one more branch of `event_from_proto`; a new part of a line is one
more field of `Line`, filled in `event_from_proto`'s `line` branch. Readers skip event
types they do not know and ignore fields they do not know, so a newer server's additions
never break an older client.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

if TYPE_CHECKING:
    # Only read, never built, here: the CLI's REST commands import this module without
    # loading protobuf.
    from ocrmesh.ocr.v1 import ocr_pb2

# Confidence on the wire: ocr_svc's float32 score, rounded (more digits are noise).
CONFIDENCE_DIGITS: Final = 4


class _Model(BaseModel):
    model_config = ConfigDict(
        # A newer server may add fields: a reader ignores them rather than failing.
        extra="ignore",
        frozen=True,
        # A field with a default (there for readers of an older server) is still always
        # sent: the OpenAPI schema of what the gateway answers says so.
        json_schema_serialization_defaults_required=True,
    )


Box = list[tuple[float, float]]


class Word(_Model):
    """One word of a line, in reading order."""

    text: str
    confidence: float = Field(description=f"0..1, rounded to {CONFIDENCE_DIGITS} places.")
    box: Box = Field(
        default_factory=list, description="Four corners, clockwise from top-left, in page pixels."
    )


class Line(_Model):
    """One recognised line: an item of `/ocr`'s `lines`, and the `line` event's fields."""

    index: int = Field(description="0-based position in reading order.")
    block: int = Field(
        default=0, description="Layout block (heading, column) of the line, 0-based in reading order."
    )
    text: str
    confidence: float = Field(description=f"0..1, rounded to {CONFIDENCE_DIGITS} places.")
    box: Box = Field(
        default_factory=list, description="Four corners, clockwise from top-left, in page pixels."
    )
    page: int = Field(default=1, description="1-based page the line is on.")
    words: list[Word] = Field(
        default_factory=list, description="The line's words in reading order, each with its box."
    )


class Page(_Model):
    """One page of a document: the `page` event's fields, and an item of `/ocr`'s `pages`."""

    page: int = Field(description="1-based position in the document.")
    width: int = Field(description="Width in pixels of the upright page image the boxes refer to.")
    height: int = Field(description="Height in pixels of the upright page image.")
    rotation: int = Field(default=0, description="Degrees (0, 90, 180, 270) the page was turned clockwise.")
    skew: float = Field(default=0.0, description="Degrees of skew corrected, counter-clockwise positive.")
    source: Literal["ocr", "text_layer"] = Field(
        default="ocr", description='"ocr": read from the pixels; "text_layer": the PDF\'s own text.'
    )
    dpi: float = Field(default=0.0, description="Pixels per inch of the page image (0: unknown).")


class Timings(_Model):
    """Milliseconds per phase of one recognition."""

    # 0 for a phase an older or other server does not report.
    decode_ms: float = 0.0
    detect_ms: float = 0.0
    recognize_ms: float = 0.0
    total_ms: float = 0.0


class _Event(_Model):
    # Declared on the base so that it is the first field of every event, whatever else the
    # event inherits (LineEvent: the fields of Line).
    type: str


class StartedEvent(_Event):
    """The image is decoded and the engine has it."""

    type: Literal["started"] = "started"
    engine: str
    image_width: int = Field(description="The first page's width in pixels.")
    image_height: int = Field(description="The first page's height in pixels.")
    page_count: int = Field(default=1, description="Pages in the document (1 for an image).")
    document_format: str = Field(default="", description='"pdf", "tiff", "png", "jpeg", "webp" or "bmp".')


class PageEvent(Page, _Event):
    """A page begins: its lines follow, before the next page event."""

    type: Literal["page"] = "page"


class LineEvent(Line, _Event):
    """One recognised line, as soon as it is read."""

    type: Literal["line"] = "line"


class CompletedEvent(_Event):
    """The end of a successful stream."""

    type: Literal["completed"] = "completed"
    full_text: str = Field(description='The lines joined with "\\n".')
    line_count: int
    timings: Timings = Field(default_factory=Timings)
    page_count: int = Field(default=1, description="Pages read.")


class ErrorEvent(_Event):
    """The end of a stream that failed after its first event."""

    type: Literal["error"] = "error"
    status: int = Field(description="The HTTP status the failure would have had before the stream began.")
    detail: str


OcrEvent = StartedEvent | PageEvent | LineEvent | CompletedEvent | ErrorEvent

_EVENT: Final[TypeAdapter[OcrEvent]] = TypeAdapter(Annotated[OcrEvent, Field(discriminator="type")])
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    event.model_fields["type"].default for event in get_args(OcrEvent)
)


class UnreadableEvent(ValueError):
    """Something in an event stream that is not one of the documented JSON events."""


def event_from_proto(response: ocr_pb2.RecognizeResponse) -> OcrEvent | None:
    """The event one message of the Recognize stream carries; None for an empty message,
    which a newer ocr_svc could send for an event kind this code does not know."""
    kind = response.WhichOneof("event")
    if kind == "started":
        started = response.started
        return StartedEvent(
            engine=started.engine,
            image_width=started.image_width,
            image_height=started.image_height,
            # An older ocr_svc sends no count: it read one image.
            page_count=started.page_count or 1,
            document_format=started.document_format,
        )
    if kind == "page":
        page = response.page
        return PageEvent(
            page=page.page,
            width=page.width,
            height=page.height,
            rotation=page.rotation,
            skew=round(page.skew, 2),
            source="text_layer" if page.source == "text_layer" else "ocr",
            dpi=round(page.dpi, 2),
        )
    if kind == "line":
        line = response.line
        return LineEvent(
            index=line.index,
            block=line.block,
            text=line.text,
            confidence=round(line.confidence, CONFIDENCE_DIGITS),
            box=[(point.x, point.y) for point in line.box],
            page=line.page or 1,
            words=[
                Word(
                    text=word.text,
                    confidence=round(word.confidence, CONFIDENCE_DIGITS),
                    box=[(point.x, point.y) for point in word.box],
                )
                for word in line.words
            ],
        )
    if kind == "completed":
        completed = response.completed
        timings = completed.timings
        return CompletedEvent(
            full_text=completed.full_text,
            line_count=completed.line_count,
            timings=Timings(
                decode_ms=timings.decode_ms,
                detect_ms=timings.detect_ms,
                recognize_ms=timings.recognize_ms,
                total_ms=timings.total_ms,
            ),
            page_count=completed.page_count or 1,
        )
    return None


def event_json(event: OcrEvent) -> str:
    """The event as its one-line JSON object (JSON text holds no raw newline)."""
    return event.model_dump_json()


def event_from_json(text: str | bytes) -> OcrEvent | None:
    """One event as JSON text (a line of NDJSON, the data of a server-sent event); None for
    blank text or an event type this code does not know (a newer server's). Raises
    UnreadableEvent for anything that is not a documented event."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("type") not in EVENT_TYPES:
            return None
        return _EVENT.validate_python(data)
    except (ValueError, ValidationError):  # json's errors are ValueErrors
        raise UnreadableEvent("not an OCR event") from None
