"""A recognised document rendered as a file, page by page: plain text, hOCR 1.2, ALTO 4
or a searchable PDF (docs/ocr.md, "Output formats").

    FORMATS: Mapping[str, RenderFormat]      "txt", "hocr", "alto", "pdf": each with its
                                             content_type, extension and filename(source)
    async def render(events: AsyncIterator[OcrEvent], document: bytes, fmt: str, *,
                     spool_dir: str | None = None, filename: str = "") -> AsyncIterator[bytes]

`events` is a document's OCR event stream (`ocrmesh.rules.ocr_events`: started, then per
page a page event and its lines, then completed), `document` the uploaded file's bytes (a
PDF's pages are kept, an image's pixels drawn), `fmt` a key of FORMATS; the chunks are at
most 64 KiB (CHUNK_BYTES). `render` raises UnknownFormat (a ValueError naming the
supported formats) before reading anything, and RenderingFailed when the events are not a
whole document (an error event, a stream cut short) or do not match the document.

The renderers read the events only through `pages.DocumentEvents` (pages, lines, words in
upright page pixels): no renderer knows an engine.
"""

from ocr_svc.rendering.formats import CHUNK_BYTES, FORMATS, RenderFormat, UnknownFormat, render
from ocr_svc.rendering.pages import RenderingFailed

__all__ = ["CHUNK_BYTES", "FORMATS", "RenderFormat", "RenderingFailed", "UnknownFormat", "render"]
