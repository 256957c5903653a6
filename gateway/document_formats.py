"""What `POST /ocr` answers with: JSON (the result) or a rendered document (plain text,
hOCR, ALTO, a searchable PDF), chosen by the `format` query parameter or else by the
`Accept` header; and the Content-Disposition a rendered document is sent with."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from typing import Final
from urllib.parse import quote

from fastapi import HTTPException, status

from ocrmesh.ocr.v1 import ocr_pb2


class DocumentFormat(StrEnum):
    """The `format` query parameter's values."""

    JSON = "json"
    TXT = "txt"
    HOCR = "hocr"
    ALTO = "alto"
    PDF = "pdf"


SUPPORTED: Final = ", ".join(member.value for member in DocumentFormat)

# What each format is sent as. hOCR is XHTML; its own media type (hOCR 1.2's
# text/vnd.hocr+html) tells a client what kind of XHTML it is.
MEDIA_TYPES: Final[Mapping[DocumentFormat, str]] = {
    DocumentFormat.JSON: "application/json",
    DocumentFormat.TXT: "text/plain; charset=utf-8",
    DocumentFormat.HOCR: "text/vnd.hocr+html; charset=utf-8",
    DocumentFormat.ALTO: "application/xml",
    DocumentFormat.PDF: "application/pdf",
}
# File name extensions, for a file name when ocr_svc gives none.
EXTENSIONS: Final[Mapping[DocumentFormat, str]] = {
    DocumentFormat.JSON: "json",
    DocumentFormat.TXT: "txt",
    DocumentFormat.HOCR: "hocr",
    DocumentFormat.ALTO: "xml",
    DocumentFormat.PDF: "pdf",
}
# The rendered formats as RenderDocument's OutputFormat (JSON is Recognize's events).
OUTPUT_FORMATS: Final[Mapping[DocumentFormat, ocr_pb2.OutputFormat]] = {
    DocumentFormat.TXT: ocr_pb2.OUTPUT_FORMAT_TXT,
    DocumentFormat.HOCR: ocr_pb2.OUTPUT_FORMAT_HOCR,
    DocumentFormat.ALTO: ocr_pb2.OUTPUT_FORMAT_ALTO,
    DocumentFormat.PDF: ocr_pb2.OUTPUT_FORMAT_PDF,
}

# The media types an Accept header may name for each format.
_ACCEPTED: Final[Mapping[str, DocumentFormat]] = {
    "application/json": DocumentFormat.JSON,
    "text/plain": DocumentFormat.TXT,
    "text/vnd.hocr+html": DocumentFormat.HOCR,
    "application/xhtml+xml": DocumentFormat.HOCR,
    "application/xml": DocumentFormat.ALTO,
    "text/xml": DocumentFormat.ALTO,
    "application/alto+xml": DocumentFormat.ALTO,
    "application/pdf": DocumentFormat.PDF,
}
# A wildcard takes the first of these that it covers and that the header does not refuse.
_PREFERENCE: Final = tuple(DocumentFormat)
ACCEPTABLE: Final = ", ".join(_ACCEPTED)
# Longer Accept headers are not read further (the edge caps headers at 64 KiB anyway).
_MAX_ACCEPT_ITEMS: Final = 64


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 1.0
            return min(max(quality, 0.0), 1.0)
    return 1.0


def _covers(media_range: str, fmt: DocumentFormat) -> bool:
    if media_range == "*/*":
        return True
    kind = media_range.partition("/")[0]
    return any(accepted.partition("/")[0] == kind for accepted, f in _ACCEPTED.items() if f is fmt)


def not_acceptable() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_406_NOT_ACCEPTABLE,
        detail=(
            f"none of the Accept header's media types is one this route answers: {ACCEPTABLE} "
            f"(or ask with ?format={'|'.join(DocumentFormat)}; supported formats: {SUPPORTED})"
        ),
    )


def negotiate_document_format(accept: str | None) -> DocumentFormat:
    """The format an Accept header asks for: the acceptable media type of highest quality
    (an exact one before a wildcard at the same quality); JSON for no header, `*/*` and
    `application/*`. Raises the 406 (listing what is supported) when the header names
    only media types this route cannot answer with."""
    if accept is None or not accept.strip():
        return DocumentFormat.JSON
    ranges: list[tuple[float, int, int, str]] = []
    refused: set[DocumentFormat] = set()
    for position, item in enumerate(accept.split(",")[:_MAX_ACCEPT_ITEMS]):
        media_range, *params = (part.strip() for part in item.split(";"))
        media_range = media_range.lower()
        if not media_range:
            continue
        quality = _quality(params)
        if quality <= 0:
            if media_range in _ACCEPTED:
                refused.add(_ACCEPTED[media_range])
            continue
        # Exact types before type/* before */* at the same quality (RFC 9110, 12.5.1).
        specificity = 2 if "*" not in media_range else (1 if not media_range.startswith("*") else 0)
        ranges.append((-quality, -specificity, position, media_range))
    for _, _, _, media_range in sorted(ranges):
        if media_range in _ACCEPTED:
            if _ACCEPTED[media_range] not in refused:
                return _ACCEPTED[media_range]
            continue
        if media_range.endswith("/*"):
            for fmt in _PREFERENCE:
                if fmt not in refused and _covers(media_range, fmt):
                    return fmt
    raise not_acceptable()


# Characters never put in a file name: path separators, quotes, controls.
_UNSAFE: Final = re.compile(r'[\\/"\x00-\x1f\x7f;]')
_MAX_FILENAME_CHARS: Final = 200


def safe_filename(name: str, fmt: DocumentFormat) -> str:
    """`name` (ocr_svc's, derived from the client's) as a bare file name: no directories,
    quotes or control characters, at most 200 characters; `document.<ext>` when nothing is
    left."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name:
        return f"document.{EXTENSIONS[fmt]}"
    return name[-_MAX_FILENAME_CHARS:]


def content_disposition(filename: str) -> str:
    """`attachment` with the name twice (RFC 6266): an ASCII fallback for old clients and the
    UTF-8 name as `filename*` (RFC 8187)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
