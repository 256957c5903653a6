"""What `render` does with an event stream that is not a whole document, or a format it
does not know."""

from __future__ import annotations

import pytest

from ocr_svc.rendering import RenderingFailed, UnknownFormat, render
from ocrmesh.rules.ocr_events import CompletedEvent, ErrorEvent, LineEvent, StartedEvent
from tests.unit.ocr.rendering.sample_documents import SamplePage, document_events, quad, stream, two_page_pdf

FORMAT_NAMES = ["txt", "hocr", "alto", "pdf"]


async def drain(events, fmt: str) -> bytes:
    document = two_page_pdf() if fmt == "pdf" else b""
    return b"".join([chunk async for chunk in render(stream(events), document, fmt)])


async def test_an_unknown_format_is_refused_naming_the_supported_ones() -> None:
    events, _ = document_events((SamplePage(),))

    with pytest.raises(UnknownFormat, match="txt, hocr, alto, pdf"):
        await drain(events, "docx")


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
async def test_an_error_event_fails_the_rendering_with_its_detail(fmt: str) -> None:
    events, _ = document_events((SamplePage(), SamplePage()))
    cut = [*events[:3], ErrorEvent(status=503, detail="the engine stopped")]

    with pytest.raises(RenderingFailed, match="the engine stopped"):
        await drain(cut, fmt)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
async def test_a_stream_that_ends_before_completed_fails_the_rendering(fmt: str) -> None:
    events, _ = document_events((SamplePage(), SamplePage()))

    with pytest.raises(RenderingFailed, match="ended before"):
        await drain(events[:-1], fmt)


async def test_a_line_of_another_page_fails_the_rendering() -> None:
    events, _ = document_events((SamplePage(), SamplePage()))
    stray = LineEvent(index=99, text="x", confidence=1.0, box=quad((1, 1, 5, 5)), page=2)
    wrong = [*events[:2], stray, *events[2:]]

    with pytest.raises(RenderingFailed, match="a line of page 2"):
        await drain(wrong, "txt")


async def test_lines_without_words_or_a_page_event_still_render_as_one_page() -> None:
    # An older ocr_svc: no page event, lines without words.
    events = [
        StartedEvent(engine="old", image_width=400, image_height=300),
        LineEvent(index=0, text="Xin chào", confidence=0.8, box=quad((10, 10, 200, 40))),
        CompletedEvent(full_text="Xin chào", line_count=1),
    ]

    assert await drain(events, "txt") == "Xin chào".encode()
    assert 'title="bbox 10 10 200 40; x_wconf 80">Xin chào<' in (await drain(events, "hocr")).decode()
