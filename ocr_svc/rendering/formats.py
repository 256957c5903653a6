"""The formats a recognised document is rendered in, and `render`, which streams one."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import IO, Final, TypeVar

from ocr_svc.rendering import alto, hocr, plain_text
from ocr_svc.rendering.pages import DocumentEvents, PageContent, RenderingFailed
from ocr_svc.rendering.searchable_pdf import SearchablePdf
from ocrmesh.rules.ocr_events import OcrEvent

T = TypeVar("T")

# The largest chunk `render` yields (RenderDocumentResponse.chunk: at most 64 KiB).
CHUNK_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class RenderFormat:
    """A file format: its media type and file extension (without the dot)."""

    name: str
    content_type: str
    extension: str

    def filename(self, source: str) -> str:
        """A name for the rendered file from the uploaded one's ("scan.pdf" -> "scan.hocr"):
        its last path component without its extension, "document" if nothing is left."""
        base = os.path.basename(source.replace("\\", "/")).strip()
        stem = base.rsplit(".", 1)[0] if "." in base[1:] else base
        stem = "".join(char for char in stem if char.isprintable() and char not in '"').strip() or "document"
        return f"{stem}.{self.extension}"


FORMATS: Final[Mapping[str, RenderFormat]] = MappingProxyType(
    {
        "txt": RenderFormat("txt", "text/plain; charset=utf-8", "txt"),
        "hocr": RenderFormat("hocr", "text/vnd.hocr+html; charset=utf-8", "hocr"),
        "alto": RenderFormat("alto", "application/xml; charset=utf-8", "alto.xml"),
        "pdf": RenderFormat("pdf", "application/pdf", "pdf"),
    }
)


class UnknownFormat(ValueError):
    """A format name that is not in FORMATS; the message lists the supported ones."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown output format {name!r}: one of {', '.join(FORMATS)}")


def chunks(data: bytes) -> list[bytes]:
    """`data` cut into pieces of at most CHUNK_BYTES (none for no data)."""
    return [data[start : start + CHUNK_BYTES] for start in range(0, len(data), CHUNK_BYTES)]


def _system(events: DocumentEvents) -> str:
    engine = events.started.engine if events.started is not None else ""
    return f"ocrmesh ({engine})" if engine else "ocrmesh"


async def render(
    events: AsyncIterator[OcrEvent],
    document: bytes,
    fmt: str,
    *,
    spool_dir: str | None = None,
    filename: str = "",
) -> AsyncIterator[bytes]:
    """The document `events` describe, rendered as `fmt` (a key of FORMATS), in chunks of
    at most 64 KiB, in order. txt, hOCR and ALTO go out a page at a time as the pages'
    events come in; a PDF is assembled page by page (in worker threads) and goes out once
    it is whole. `document` is the uploaded file (only the PDF reads it); `filename` the
    uploaded file's name (hOCR's and ALTO's image reference). Raises UnknownFormat (before
    reading any event) and RenderingFailed (the events are not a whole document, or the
    document does not match them)."""
    if fmt not in FORMATS:
        raise UnknownFormat(fmt)
    reader = DocumentEvents(events)
    # Generators closed here when the caller stops, not whenever the loop finalises
    # them: the PDF's temporary files go at once.
    async with contextlib.aclosing(reader.pages()) as pages:
        if fmt == "pdf":
            async with contextlib.aclosing(_pdf(reader, pages, document, spool_dir)) as pdf_chunks:
                async for chunk in pdf_chunks:
                    yield chunk
            return
        async for chunk in _markup(reader, pages, fmt, filename):
            yield chunk


async def _markup(
    reader: DocumentEvents, pages: AsyncIterator[PageContent], fmt: str, filename: str
) -> AsyncIterator[bytes]:
    name = os.path.basename(filename.replace("\\", "/")) or "document"
    first = True
    after = b""
    async for content in pages:
        part = b""
        if fmt == "txt":
            part = plain_text.page(content, first=first)
        elif fmt == "hocr":
            if first:
                before, after = hocr.frame(
                    _system(reader), reader.started.page_count if reader.started else 1
                )
                part = before
            part += hocr.page(content, name)
        else:
            if first:
                before, after = alto.frame(_system(reader), name)
                part = before
            part += alto.page(content)
        first = False
        for chunk in chunks(part):
            yield chunk
    for chunk in chunks(after):
        yield chunk


async def _pdf(
    reader: DocumentEvents, pages: AsyncIterator[PageContent], document: bytes, spool_dir: str | None
) -> AsyncGenerator[bytes, None]:
    builder: SearchablePdf | None = None
    pending: asyncio.Future[None] | None = None
    result: IO[bytes] | None = None
    try:
        async for content in pages:
            if builder is None:
                started = reader.started
                fmt = started.document_format if started is not None else ""
                builder = await _in_thread(SearchablePdf, document, fmt, spool_dir)
            if pending is not None:
                await pending
            # This page is drawn while the next one's events come in.
            pending = asyncio.ensure_future(asyncio.to_thread(builder.add_page, content))
        if pending is not None:
            await pending
            pending = None
        if builder is None:
            raise RenderingFailed("the document has no pages")
        result = await _in_thread(builder.finish, reader.started.page_count if reader.started else None)
        while chunk := await _in_thread(result.read, CHUNK_BYTES):
            yield chunk
    finally:
        if pending is not None:
            # A worker thread cannot be stopped: let it end before closing what it uses.
            with contextlib.suppress(BaseException):
                await asyncio.shield(pending)
        if result is not None:
            result.close()
        if builder is not None:
            builder.close()


async def _in_thread(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` in a worker thread; when the caller is cancelled meanwhile, it
    still waits for the thread to end (it cannot be stopped) so that what the caller closes
    next is not in use."""
    future = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise
