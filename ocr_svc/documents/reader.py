"""Open an upload as a document, whatever it is: sniffed by its bytes, checked, then read
page by page (`ocr_svc.documents.model.Document`)."""

from __future__ import annotations

from ocr_svc.documents.formats import PDF, TIFF, sniff_format
from ocr_svc.documents.model import Document, DocumentLimits, Offload
from ocr_svc.documents.pdf import PdfDocument
from ocr_svc.documents.raster import ImageDocument, TiffDocument
from ocr_svc.images import InvalidImage
from ocrmesh.rules.document_refusals import DocumentRefusal


async def open_document(
    data: bytes, limits: DocumentLimits, offload: Offload, *, force_ocr: bool = False
) -> Document:
    """`data` opened as a document; raises `InvalidImage` (a `DocumentRefused` for a
    document's own refusals) before any page is read when it is refused. `offload` runs
    the blocking steps (decoding) in the caller's worker threads; `force_ocr`: PDF pages
    are rendered even when they have a text layer."""
    if not data:
        raise InvalidImage("the upload is empty", DocumentRefusal.UNREADABLE)
    if len(data) > limits.image.max_bytes:
        raise InvalidImage(
            f"the upload is {len(data)} bytes; the limit is {limits.image.max_bytes} bytes", None
        )
    fmt = sniff_format(data)
    if fmt == PDF:
        return await PdfDocument.open(data, limits, force_ocr=force_ocr)
    if fmt == TIFF:
        return await TiffDocument.open(data, limits, offload)
    return ImageDocument(data, fmt, limits.image, offload)
