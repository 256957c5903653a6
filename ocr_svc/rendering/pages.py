"""The recognised document page by page: the OCR event stream (`ocrmesh.rules.ocr_events`)
grouped into pages, lines and words, as every renderer reads it.

A stream is `started`, then per page a `page` event and that page's lines, then
`completed` (docs/gateway.md, "The OCR stream"). Anything else (an `error` event, a line of
another page, a stream that stops before `completed`) raises `RenderingFailed`: a renderer
never hands out a file that silently lacks pages.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from ocrmesh.rules.ocr_events import (
    Box,
    CompletedEvent,
    ErrorEvent,
    LineEvent,
    OcrEvent,
    PageEvent,
    StartedEvent,
    Word,
)

# What XML 1.0 allows in text and attribute values (and what a PDF text layer can carry
# usefully): a text layer read from a PDF may hold control characters.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class RenderingFailed(Exception):
    """The events do not describe a whole document (an error event, pages out of order,
    a stream that ended early), or the document does not match them. The message is
    safe to return to the caller."""


def clean_text(text: str) -> str:
    """`text` in NFC without the characters XML cannot carry (control characters)."""
    return _NOT_XML_CHAR.sub("", unicodedata.normalize("NFC", text))


@dataclass(frozen=True)
class Rect:
    """An axis-aligned box in page pixels: left, top, right, bottom (right >= left)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def union(self, other: Rect) -> Rect:
        return Rect(
            min(self.left, other.left),
            min(self.top, other.top),
            max(self.right, other.right),
            max(self.bottom, other.bottom),
        )

    def clamped(self, width: int, height: int) -> Rect:
        """Inside the page `width` x `height` (a box may reach past a page edge)."""
        left = min(max(self.left, 0.0), float(width))
        top = min(max(self.top, 0.0), float(height))
        return Rect(
            left, top, min(max(self.right, left), float(width)), min(max(self.bottom, top), float(height))
        )

    def pixels(self) -> tuple[int, int, int, int]:
        """Whole pixels covering the box: left, top, right, bottom."""
        return (math.floor(self.left), math.floor(self.top), math.ceil(self.right), math.ceil(self.bottom))


def rect_of(box: Box) -> Rect | None:
    """The axis-aligned box around a quad's corners; None for a line or word without one."""
    if not box:
        return None
    xs = [x for x, _ in box]
    ys = [y for _, y in box]
    return Rect(min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True)
class PageWord:
    """A word as renderers draw it: text, box in page pixels, confidence 0..1."""

    text: str
    rect: Rect
    confidence: float


@dataclass(frozen=True)
class PageLine:
    """A line of a page: its layout block, box and words (never empty)."""

    block: int
    text: str
    rect: Rect
    confidence: float
    words: tuple[PageWord, ...]


@dataclass
class PageContent:
    """One page: the page event (size of the upright image, rotation, skew, dpi) and its
    lines in reading order."""

    page: PageEvent
    lines: list[PageLine] = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.page.page

    def text(self) -> str:
        """The page's lines joined with "\\n"."""
        return "\n".join(line.text for line in self.lines)

    def blocks(self) -> list[list[PageLine]]:
        """The lines grouped by layout block: consecutive lines of one block."""
        groups: list[list[PageLine]] = []
        for line in self.lines:
            if groups and groups[-1][0].block == line.block:
                groups[-1].append(line)
            else:
                groups.append([line])
        return groups


def _page_line(event: LineEvent, page: PageEvent) -> PageLine | None:
    """The line with its words cleaned and clamped to the page; a line without words
    (an engine that gives only lines) is one word; a line with no box nor any word box
    cannot be placed and is None."""
    line_rect = rect_of(event.box)
    words: list[PageWord] = []
    for word in event.words:
        rect = rect_of(word.box) or line_rect
        text = clean_text(word.text).strip()
        if rect is not None and text:
            words.append(_word(text, rect, word, page))
    if not words and line_rect is not None and clean_text(event.text).strip():
        words.append(
            PageWord(
                clean_text(event.text).strip(), line_rect.clamped(page.width, page.height), event.confidence
            )
        )
    if not words:
        return None
    rect = words[0].rect
    for word_ in words[1:]:
        rect = rect.union(word_.rect)
    if line_rect is not None:
        rect = rect.union(line_rect.clamped(page.width, page.height))
    text = clean_text(event.text).strip() or " ".join(w.text for w in words)
    return PageLine(block=event.block, text=text, rect=rect, confidence=event.confidence, words=tuple(words))


def _word(text: str, rect: Rect, word: Word, page: PageEvent) -> PageWord:
    return PageWord(text, rect.clamped(page.width, page.height), min(max(word.confidence, 0.0), 1.0))


class DocumentEvents:
    """Reads an event stream page by page: `async for page in DocumentEvents(events).pages()`.
    `started` is the stream's started event once the first page is out."""

    def __init__(self, events: AsyncIterator[OcrEvent]) -> None:
        self._events = events
        self.started: StartedEvent | None = None

    async def pages(self) -> AsyncGenerator[PageContent, None]:
        """The pages in order, each once its last line is in."""
        current: PageContent | None = None
        last_number = 0
        async for event in self._events:
            if isinstance(event, ErrorEvent):
                raise RenderingFailed(f"the recognition failed: {event.detail}")
            if self.started is None:
                if not isinstance(event, StartedEvent):
                    raise RenderingFailed("the event stream does not begin with a started event")
                self.started = event
                continue
            if isinstance(event, PageEvent):
                if event.page <= last_number:
                    raise RenderingFailed(f"page {event.page} came after page {last_number}")
                if current is not None:
                    yield current
                current, last_number = PageContent(event), event.page
            elif isinstance(event, LineEvent):
                if current is None:
                    # An older ocr_svc sends no page event for an image: its one page.
                    current, last_number = PageContent(self._first_page()), 1
                if event.page != current.number:
                    raise RenderingFailed(f"a line of page {event.page} came within page {current.number}")
                line = _page_line(event, current.page)
                if line is not None:
                    current.lines.append(line)
            elif isinstance(event, CompletedEvent):
                if current is None:
                    current = PageContent(self._first_page())
                yield current
                return
        raise RenderingFailed("the event stream ended before the document was complete")

    def _first_page(self) -> PageEvent:
        assert self.started is not None
        return PageEvent(page=1, width=self.started.image_width, height=self.started.image_height)


async def events_of(sequence: Sequence[OcrEvent]) -> AsyncIterator[OcrEvent]:
    """A list of events as the async stream `render` reads (tests, benches)."""
    for event in sequence:
        yield event
