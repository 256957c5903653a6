"""The PDFium side of a PDF: a short-lived process, one per document, that opens the PDF,
says what it holds and hands back one page at a time (its pixels, or its text layer).

PDFium is C++ and reads whatever a caller uploads: a page that crashes it, or a render that
runs away with memory, must cost one request, never the ocr_svc worker. So this runs as a
separate process (`python pdf_helper.py`, imports only the standard library and
pypdfium2, so it starts in well under 100 ms), bounded by an address-space limit of about
one page, talking to its parent over its stdin/stdout:

    parent -> helper   frame: JSON options; frame: the PDF's bytes
    helper -> parent   frame: JSON {"pages": n, "sizes": [[w, h], ...]} (points)
                       or {"error": "password" | "unreadable", "detail": ...}
    parent -> helper   frame: JSON {"page": i, "dpi": d, "text": bool}     (per page)
    helper -> parent   frame: JSON {"width", "height", "lines"}  (text layer: "lines" set)
                       then, when rendered, a frame of width x height grey bytes

A frame is a 4-byte big-endian length and that many bytes. The helper renders a page only
when asked, so the parent paces it and it never holds more than one page. End of its
stdin (the parent closed it, or died) ends it; on Linux it also dies with its parent.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import resource
import signal
import struct
import sys
from typing import Any, BinaryIO

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

_LENGTH = struct.Struct(">I")
# Frames larger than this are not a page of ours (a 40 Mpx page is 40 MB of grey).
MAX_FRAME = 1 << 30
# A char box this much below the previous char's starts a new line (fraction of its height).
_NEW_LINE_DROP = 0.6
# A gap between two chars wider than this (fraction of the line's height) starts a new word
# even without a space character (PDFs often position words without one).
_WORD_GAP = 0.25
_PR_SET_PDEATHSIG = 1


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame of `stream`, None at its end."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes")
    data = stream.read(length)
    if len(data) < length:
        return None
    return data


def write_frame(stream: BinaryIO, data: bytes | memoryview) -> None:
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)


def _send(stream: BinaryIO, message: dict[str, Any]) -> None:
    write_frame(stream, json.dumps(message).encode())
    stream.flush()


def page_scale(dpi: float) -> float:
    return dpi / 72.0


def text_lines(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, dpi: float) -> list[dict[str, Any]]:
    """The page's text layer as lines of words, each with its box (4 corners, clockwise
    from top-left) in pixels of the page rendered at `dpi` (the same place as on the
    raster: the page's /Rotate and crop box applied, by PDFium's own page-to-device map).

    Chars come in the content's order; a line ends at a line break PDFium reports (a
    generated CR/LF), or where the next char drops below the line; a word at a space or a
    gap wider than a quarter of the line's height."""
    scale = page_scale(dpi)
    width = math.ceil(page.get_width() * scale)
    height = math.ceil(page.get_height() * scale)
    to_device = _device_map(page, width, height)
    count = textpage.count_chars()
    rect = pdfium_c.FS_RECTF()
    lines: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    word_text: list[str] = []
    word_box: list[float] | None = None  # left, top, right, bottom in device pixels
    last_box: list[float] | None = None

    def close_word() -> None:
        nonlocal word_box, word_text
        if word_box is not None and "".join(word_text).strip():
            words.append({"text": "".join(word_text), "box": word_box})
        word_text, word_box = [], None

    def close_line() -> None:
        nonlocal words
        close_word()
        if words:
            lines.append(
                {
                    "text": " ".join(word["text"] for word in words),
                    "words": [{"text": w["text"], "box": _corners(w["box"])} for w in words],
                    "box": _corners(
                        [
                            min(w["box"][0] for w in words),
                            min(w["box"][1] for w in words),
                            max(w["box"][2] for w in words),
                            max(w["box"][3] for w in words),
                        ]
                    ),
                }
            )
        words = []

    for index in range(count):
        code = pdfium_c.FPDFText_GetUnicode(textpage, index)
        char = chr(code) if 0 < code < 0x110000 else ""
        if char in ("\r", "\n"):
            close_line()
            last_box = None
            continue
        if not char or char.isspace() or char == "\x02":
            close_word()
            continue
        if not pdfium_c.FPDFText_GetLooseCharBox(textpage, index, rect):
            continue
        box = to_device(rect.left, rect.top, rect.right, rect.bottom)
        if last_box is not None:
            line_height = max(1.0, last_box[3] - last_box[1])
            if box[1] > last_box[1] + _NEW_LINE_DROP * line_height or box[2] < last_box[0]:
                close_line()
            elif box[0] - last_box[2] > _WORD_GAP * line_height:
                close_word()
        last_box = box
        word_text.append(char)
        if word_box is None:
            word_box = list(box)
        else:
            word_box = [
                min(word_box[0], box[0]),
                min(word_box[1], box[1]),
                max(word_box[2], box[2]),
                max(word_box[3], box[3]),
            ]
    close_line()
    return lines


def _corners(box: list[float]) -> list[list[float]]:
    left, top, right, bottom = (round(value, 1) for value in box)
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


def _device_map(page: pdfium.PdfPage, width: int, height: int) -> Any:
    """A function from a rectangle in page space (points) to (left, top, right, bottom) in
    device pixels of a `width` x `height` raster, from three points of PDFium's own map."""
    x = ctypes.c_int()
    y = ctypes.c_int()

    def device(px: float, py: float) -> tuple[float, float]:
        pdfium_c.FPDF_PageToDevice(page, 0, 0, width, height, 0, px, py, ctypes.byref(x), ctypes.byref(y))
        return float(x.value), float(y.value)

    # Far apart points, so the ints PDFium rounds to cost nothing in precision.
    span = 10000.0
    ox, oy = device(0.0, 0.0)
    ax, ay = device(span, 0.0)
    bx, by = device(0.0, span)
    xx, yx = (ax - ox) / span, (ay - oy) / span
    xy, yy = (bx - ox) / span, (by - oy) / span

    def rect(left: float, top: float, right: float, bottom: float) -> list[float]:
        xs, ys = [], []
        for px, py in ((left, top), (right, top), (right, bottom), (left, bottom)):
            xs.append(ox + xx * px + xy * py)
            ys.append(oy + yx * px + yy * py)
        return [min(xs), min(ys), max(xs), max(ys)]

    return rect


def _limit_memory(max_bytes: int) -> None:
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() == 1:
            sys.exit(0)


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    """Read a document from `inp`, answer page requests on `out`; 0 when the parent is done."""
    options_frame = read_frame(inp)
    document = read_frame(inp)
    if options_frame is None or document is None:
        return 0
    options = json.loads(options_frame)
    _limit_memory(int(options.get("max_memory_bytes", 0)))
    max_pages = int(options["max_pages"])
    try:
        pdf = pdfium.PdfDocument(document)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        kind = "password" if code == pdfium_c.FPDF_ERR_PASSWORD else "unreadable"
        _send(out, {"error": kind, "detail": str(exc)[:200]})
        return 0
    pages = len(pdf)
    sizes: list[list[float]] = []
    if 0 < pages <= max_pages:
        for index in range(pages):
            width, height = pdf.get_page_size(index)
            sizes.append([width, height])
    _send(out, {"pages": pages, "sizes": sizes})
    while (request_frame := read_frame(inp)) is not None:
        request = json.loads(request_frame)
        _answer_page(pdf, int(request["page"]), float(request["dpi"]), bool(request["text"]), out)
    return 0


def _answer_page(pdf: pdfium.PdfDocument, index: int, dpi: float, text: bool, out: BinaryIO) -> None:
    page = pdf[index]
    try:
        scale = page_scale(dpi)
        width = math.ceil(page.get_width() * scale)
        height = math.ceil(page.get_height() * scale)
        if text:
            textpage = page.get_textpage()
            try:
                lines = text_lines(page, textpage, dpi)
            finally:
                textpage.close()
            if lines:
                _send(out, {"width": width, "height": height, "lines": lines})
                return
        # Grey, one byte a pixel: what the recognisers read (Tesseract thresholds luminance),
        # in 16 ms a Letter page at 300 dpi against 38 for RGB, and a third of the bytes
        # through the pipe. The searchable PDF keeps the PDF's own pages, never these pixels.
        bitmap = page.render(
            scale=scale,
            force_bitmap_format=pdfium_c.FPDFBitmap_Gray,
            fill_color=(255, 255, 255, 255),
        )
        try:
            rows = bitmap.height
            row_bytes = bitmap.width
            buffer = bitmap.buffer
            _send(out, {"width": bitmap.width, "height": rows, "lines": None})
            out.write(_LENGTH.pack(rows * row_bytes))
            if bitmap.stride == row_bytes:
                out.write(memoryview(buffer).cast("B")[: rows * row_bytes])
            else:
                view = memoryview(buffer).cast("B")
                for row in range(rows):
                    out.write(view[row * bitmap.stride : row * bitmap.stride + row_bytes])
            out.flush()
        finally:
            bitmap.close()
    finally:
        page.close()


def main() -> int:
    _die_with_parent()
    return serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
