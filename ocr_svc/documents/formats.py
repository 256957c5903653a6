"""What an upload is, from its first bytes (never its name or declared type)."""

from __future__ import annotations

from ocr_svc.documents.model import DocumentRefused
from ocrmesh.rules.document_refusals import DocumentRefusal

# Formats, as `Started.document_format` names them.
PDF, TIFF, PNG, JPEG, WEBP, BMP = "pdf", "tiff", "png", "jpeg", "webp", "bmp"
# PDF readers (Acrobat, PDFium) find the header within the first 1024 bytes.
PDF_HEADER_WINDOW = 1024
ACCEPTED = "PDF, TIFF, PNG, JPEG, WebP or BMP"


def sniff_format(data: bytes) -> str:
    """The format of `data` by its magic bytes; `DocumentRefused` (UNSUPPORTED_FORMAT)
    for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return TIFF
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"BM"):
        return BMP
    if b"%PDF-" in data[:PDF_HEADER_WINDOW]:
        return PDF
    raise DocumentRefused(
        DocumentRefusal.UNSUPPORTED_FORMAT, f"not a document in an accepted format ({ACCEPTED})"
    )
