"""A PDF as a document: PDFium (pypdfium2) runs in a helper process of its own, one per
document (`pdf_helper.py`), which renders a page or extracts its text layer only when asked,
one page at a time.

Isolation: a PDF that crashes PDFium, or makes it run out of its memory bound
(`helper_memory_bytes`: about one page at the pixel cap, plus the upload), or hangs it
past `PAGE_TIMEOUT_S`, ends that helper; the request is refused (UNREADABLE) and the
ocr_svc worker goes on serving. Start-up is a fresh interpreter importing only pypdfium2:
about 0.1 s, paid once per document.

Refusals come before any page is rendered: an encrypted PDF (ENCRYPTED), a file PDFium
cannot open (UNREADABLE), more pages than `max_pages` (TOO_MANY_PAGES, from the page count
alone), a page whose raster at its render dpi is over the pixel cap (PAGE_TOO_LARGE,
from the page sizes in points, which PDFium reads without loading the pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import struct
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ocr_svc.documents.model import DocumentLimits, DocumentRefused, SourcePage
from ocr_svc.engines.base import Quad, RecognizedLine, RecognizedWord
from ocrmesh.platform.units import MiB
from ocrmesh.rules.document_refusals import DocumentRefusal

log = logging.getLogger(__name__)

HELPER = Path(__file__).with_name("pdf_helper.py")
_LENGTH = struct.Struct(">I")
OPEN_TIMEOUT_S = 30.0
PAGE_TIMEOUT_S = 60.0
# The helper's address space: the interpreter and PDFium (about 50 MB), the upload (held
# once by Python, once by PDFium), one page at the pixel cap in its grey bitmap (written
# out from the bitmap itself), and room for the images, often colour, PDFium decodes to draw it.
HELPER_BASE_BYTES = 256 * MiB
HELPER_BYTES_PER_PIXEL = 8
# Read buffer of the helper's pipe: a page arrives in a few large reads.
_PIPE_LIMIT = 4 * MiB


def helper_memory_bytes(upload_bytes: int, max_pixels: int) -> int:
    """The address-space bound of a helper reading an upload of `upload_bytes`."""
    return HELPER_BASE_BYTES + 2 * upload_bytes + HELPER_BYTES_PER_PIXEL * max_pixels


class PdfDocument:
    """An opened PDF, its pages read through its helper process."""

    format = "pdf"

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        sizes: list[tuple[float, float]],
        limits: DocumentLimits,
        force_ocr: bool,
    ) -> None:
        self._process = process
        self._sizes = sizes
        self._limits = limits
        self._force_ocr = force_ocr
        self.page_count = len(sizes)

    @classmethod
    async def open(cls, data: bytes, limits: DocumentLimits, *, force_ocr: bool = False) -> PdfDocument:
        """Start a helper on `data` and check the document; raises `DocumentRefused`."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HELPER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=_PIPE_LIMIT,
        )
        try:
            options = {
                "max_pages": limits.max_pages,
                "max_memory_bytes": helper_memory_bytes(len(data), limits.image.max_pixels),
            }
            info = await asyncio.wait_for(_open_exchange(process, options, data), OPEN_TIMEOUT_S)
            sizes = _checked_sizes(info, limits)
        except BaseException:
            await _stop(process)
            raise
        return cls(process, sizes, limits, force_ocr)

    async def page(self, index: int) -> SourcePage:
        if not 0 <= index < self.page_count:
            raise IndexError(index)
        width_pt, height_pt = self._sizes[index]
        dpi = self._limits.render_dpi(width_pt, height_pt)
        try:
            return await asyncio.wait_for(self._exchange_page(index, dpi), PAGE_TIMEOUT_S)
        except TimeoutError:
            await _stop(self._process)
            raise DocumentRefused(
                DocumentRefusal.UNREADABLE,
                f"page {index + 1} of the PDF took over {PAGE_TIMEOUT_S:.0f} s to render",
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            code = await _stop(self._process)
            log.warning("PDF helper stopped", extra={"page": index + 1, "returncode": code})
            raise DocumentRefused(
                DocumentRefusal.UNREADABLE,
                f"page {index + 1} of the PDF cannot be read (the PDF renderer stopped on it)",
            ) from None

    async def _exchange_page(self, index: int, dpi: float) -> SourcePage:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        request = {"page": index, "dpi": dpi, "text": not self._force_ocr}
        _write_frame(stdin, json.dumps(request).encode())
        await stdin.drain()
        header = json.loads(await _read_frame(stdout))
        width, height = int(header["width"]), int(header["height"])
        if header.get("lines") is not None:
            lines = tuple(_text_line(line) for line in header["lines"])
            return SourcePage(number=index + 1, width=width, height=height, dpi=dpi, pixels=None, lines=lines)
        raw = await _read_frame(stdout)
        if len(raw) != width * height:
            raise asyncio.IncompleteReadError(raw, width * height)
        grey = np.frombuffer(raw, dtype=np.uint8).reshape(height, width)
        pixels = np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), dtype=np.uint8)
        return SourcePage(number=index + 1, width=width, height=height, dpi=dpi, pixels=pixels)

    @property
    def pid(self) -> int:
        """The helper's process id (tests end it to see a crash cost one request)."""
        return self._process.pid

    async def aclose(self) -> None:
        await _stop(self._process)


async def _open_exchange(process: asyncio.subprocess.Process, options: dict[str, Any], data: bytes) -> Any:
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None
    assert stdout is not None
    try:
        _write_frame(stdin, json.dumps(options).encode())
        _write_frame(stdin, data)
        await stdin.drain()
        return json.loads(await _read_frame(stdout))
    except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
        raise DocumentRefused(
            DocumentRefusal.UNREADABLE, "the PDF cannot be read (the PDF reader stopped on it)"
        ) from None


def _checked_sizes(info: dict[str, Any], limits: DocumentLimits) -> list[tuple[float, float]]:
    """The page sizes the helper reported, or the refusal they call for."""
    error = info.get("error")
    if error == "password":
        raise DocumentRefused(
            DocumentRefusal.ENCRYPTED,
            "the PDF is password-protected (encrypted); remove the password protection and upload it again",
        )
    if error is not None:
        raise DocumentRefused(
            DocumentRefusal.UNREADABLE, f"the PDF cannot be read: {info.get('detail', error)}"
        )
    pages = int(info["pages"])
    if pages <= 0:
        raise DocumentRefused(DocumentRefusal.UNREADABLE, "the PDF has no pages")
    if pages > limits.max_pages:
        raise DocumentRefused(
            DocumentRefusal.TOO_MANY_PAGES,
            f"the PDF has {pages} pages; this deployment reads at most {limits.max_pages} (OCR_MAX_PAGES)",
        )
    sizes = [(float(width), float(height)) for width, height in info["sizes"]]
    max_pixels = limits.image.max_pixels
    for number, (width_pt, height_pt) in enumerate(sizes, start=1):
        if not (width_pt > 0 and height_pt > 0 and math.isfinite(width_pt * height_pt)):
            raise DocumentRefused(DocumentRefusal.UNREADABLE, f"page {number} of the PDF has no size")
        dpi = limits.render_dpi(width_pt, height_pt)
        pixels = math.ceil(width_pt * dpi / 72.0) * math.ceil(height_pt * dpi / 72.0)
        if pixels > max_pixels:
            raise DocumentRefused(
                DocumentRefusal.PAGE_TOO_LARGE,
                f"page {number} of the PDF is {width_pt:.0f} x {height_pt:.0f} points: {pixels} pixels at "
                f"{dpi:g} dpi; the limit is {max_pixels} pixels",
            )
    return sizes


def _quad(points: list[list[float]]) -> Quad:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    return ((x0, y0), (x1, y1), (x2, y2), (x3, y3))


def _text_line(line: dict[str, Any]) -> RecognizedLine:
    words = tuple(
        RecognizedWord(text=str(word["text"]), confidence=1.0, box=_quad(word["box"]))
        for word in line["words"]
    )
    return RecognizedLine(text=str(line["text"]), confidence=1.0, box=_quad(line["box"]), words=words)


def _write_frame(stream: asyncio.StreamWriter, data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)


async def _read_frame(stream: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    return await stream.readexactly(length)


async def _stop(process: asyncio.subprocess.Process) -> int | None:
    """End the helper: close its stdin (it exits), and kill it if it has not within a second."""
    if process.returncode is None:
        if process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 1.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise
    return process.returncode
