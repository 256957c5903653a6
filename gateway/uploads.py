"""Reading an uploaded document (an image, a multi-page TIFF or a PDF) from a multipart body:
bounded while it streams in, kept in memory (no temporary files), and checked by its leading
bytes to be a format ocr_svc reads before anything is sent on.

FastAPI's `UploadFile` would spool the whole body (to disk past 1 MiB) before the route
could refuse it; here the size is refused from Content-Length at once, and otherwise as
soon as the bytes read pass the limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from fastapi import HTTPException, Request, status
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ocrmesh.platform.telemetry import span
from ocrmesh.rules.languages import MAX_LANGUAGES, MAX_LANGUAGES_TEXT, InvalidLanguages, parse_language_list

log = logging.getLogger(__name__)

# Room for the multipart framing (boundaries, part headers, a small extra field or two)
# on top of the file itself.
MULTIPART_OVERHEAD_BYTES: Final = 64 * 1024

PDF: Final = "application/pdf"
# The formats ocr_svc reads, by their leading bytes. A TIFF may hold several pages (every
# one is read); BigTIFF ("II+", "MM\0+") is not read by ocr_svc's decoder.
_SIGNATURES: Final[tuple[tuple[bytes, int, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"BM", 0, "image/bmp"),
    (b"WEBP", 8, "image/webp"),  # after "RIFF" and a 4-byte size
    # ISO 32000: the header is the first line. (Readers tolerate junk before it; this
    # gateway does not: a file that does not start as a PDF is not sent on as one.)
    (b"%PDF-", 0, PDF),
)
SUPPORTED_FORMATS: Final = "PNG, JPEG, WebP, TIFF (multi-page too), BMP or PDF"
IMAGE_MEDIA_TYPES: Final = tuple(
    dict.fromkeys(media_type for _, _, media_type in _SIGNATURES if media_type.startswith("image/"))
)
# Formats of several pages besides multi-page TIFF.
DOCUMENT_MEDIA_TYPES: Final = (PDF,)
# Declared part types that say nothing against a document; anything else is refused early.
_NEUTRAL_TYPES: Final = frozenset({"", "application/octet-stream"})
# Declared types accepted besides image/* (a browser declares a PDF as application/pdf,
# some as application/x-pdf).
_DOCUMENT_TYPES: Final = frozenset({PDF, "application/x-pdf"})
# The part types OpenAPI lists: the formats read, and the neutral one. (Any declared image/*
# passes to the bytes' check too.)
_FILE_PART_TYPES: Final = ", ".join([*IMAGE_MEDIA_TYPES, *DOCUMENT_MEDIA_TYPES, "application/octet-stream"])
# The `force_ocr` form field: a boolean as OpenAPI clients send it, `true` or `false` (any
# case). Nothing else (1, yes, an empty value): what the schema does not call a boolean is
# refused, so the OpenAPI document stays exact.
FORCE_OCR_FIELD: Final = "force_ocr"
_TRUE_WORDS: Final = frozenset({"true"})
_FALSE_WORDS: Final = frozenset({"false"})
_MAX_FLAG_CHARS: Final = 16

# The OpenAPI description of the body, since the route reads the stream itself.
MULTIPART_IMAGE_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "languages": {
                            "type": "string",
                            "maxLength": MAX_LANGUAGES_TEXT,
                            "pattern": r"^\s*([A-Za-z]{2}\s*(,\s*[A-Za-z]{2}\s*)*)?$",
                            "description": (
                                f"The document's languages: up to {MAX_LANGUAGES} comma-separated ISO 639-1 "
                                "codes, e.g. `vi,en`; default `en`. GET /ocr/languages lists what this "
                                "deployment reads; another code is a 422 listing them."
                            ),
                            "examples": ["vi,en"],
                        },
                        "force_ocr": {
                            "type": "boolean",
                            "default": False,
                            "description": (
                                "OCR every page, even a PDF page that has its own text layer (by default "
                                "such a page's text is returned as it is, with `source: text_layer`)."
                            ),
                        },
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": (
                                f"The document: {SUPPORTED_FORMATS}, whatever its part's declared type "
                                "(the bytes decide). Every page of a TIFF or PDF is read, up to ocr_svc's "
                                "OCR_MAX_PAGES."
                            ),
                        },
                    },
                },
                "encoding": {"file": {"contentType": _FILE_PART_TYPES}},
            }
        },
    }
}


@dataclass(frozen=True)
class ImageUpload:
    """An uploaded document (an image, a multi-page TIFF or a PDF) and its form fields."""

    data: bytes
    filename: str
    # The type the bytes really are, whatever the client declared.
    content_type: str
    # The `languages` field's codes, checked for syntax only (ocr_svc knows which it reads).
    languages: tuple[str, ...] = ()
    # The `force_ocr` field: OCR pages that have a text layer too.
    force_ocr: bool = False


def sniff_image_type(head: bytes) -> str | None:
    """The media type of an encoded image or document from its first bytes (PDF:
    application/pdf), None if not one ocr_svc reads."""
    for signature, offset, media_type in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if media_type == "image/webp" and not head.startswith(b"RIFF"):
                continue
            return media_type
    return None


def _too_large(max_bytes: int) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"the upload is larger than the limit of {max_bytes} bytes",
    )


def _missing_file(field_name: str) -> HTTPException:
    # The same shape FastAPI gives its own validation errors.
    return HTTPException(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"type": "missing", "loc": ["body", field_name], "msg": "Field required", "input": None}],
    )


def invalid_field(field_name: str, message: str, value: str | None = None) -> HTTPException:
    """A 422 naming `field_name`, shaped like FastAPI's own validation errors."""
    return HTTPException(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"type": "value_error", "loc": ["body", field_name], "msg": message, "input": value}],
    )


LANGUAGES_FIELD: Final = "languages"
# The small form fields besides the file, with the most characters each may have.
_SMALL_FIELDS: Final[dict[str, int]] = {LANGUAGES_FIELD: MAX_LANGUAGES_TEXT, FORCE_OCR_FIELD: _MAX_FLAG_CHARS}


def _too_long(field_name: str) -> str:
    if field_name == LANGUAGES_FIELD:
        return f"the language list is longer than {MAX_LANGUAGES_TEXT} characters"
    return f"longer than {_MAX_FLAG_CHARS} characters; send true or false"


def parse_flag(field_name: str, text: str) -> bool:
    """A boolean form field: `true` or `false` (any case, surrounding blanks ignored).
    Raises the 422 naming `field_name` for anything else."""
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise invalid_field(field_name, "Input should be a valid boolean: true or false", text[:_MAX_FLAG_CHARS])


class _FilePartCollector:
    """Multipart parser callbacks that keep the bytes of the first part named `field_name`
    that carries a file, and refuse it as soon as it passes `max_bytes`; and the small
    fields (`languages`, `force_ocr`), each refused (422) as soon as it is longer than its
    value can be or, once whole, not one: before the rest of the upload is read."""

    def __init__(self, field_name: str, max_bytes: int) -> None:
        self.field_name = field_name
        self.max_bytes = max_bytes
        self.found = False
        self.filename = ""
        self.data = bytearray()
        self.languages: tuple[str, ...] = ()
        self.force_ocr = False
        self._collecting = False
        # The small field being read (languages, force_ocr), its text so far, and its limit.
        self._small_field: str | None = None
        self._small_text = bytearray()
        self._small_seen: set[str] = set()
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_name = b""
        self._header_value = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        if name in _SMALL_FIELDS and name not in self._small_seen:
            # The first of each; a repeat is ignored, as the file's is.
            self._small_seen.add(name)
            self._small_field = name
            self._small_text = bytearray()
            return
        if self.found or name != self.field_name:
            return
        declared, _ = parse_options_header(self._headers.get(b"content-type"))
        declared_type = declared.decode("latin-1")
        if (
            declared_type not in _NEUTRAL_TYPES
            and declared_type not in _DOCUMENT_TYPES
            and not declared_type.startswith("image/")
        ):
            raise HTTPException(
                status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                detail=f"'{self.field_name}' is {declared_type}; send an image or a PDF: {SUPPORTED_FORMATS}",
            )
        self.found = True
        self._collecting = True
        self.filename = options.get(b"filename", b"").decode("utf-8", errors="replace")[:255]

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._small_field is not None:
            self._small_text += data[start:end]
            if len(self._small_text) > _SMALL_FIELDS[self._small_field]:
                raise invalid_field(self._small_field, _too_long(self._small_field))
            return
        if not self._collecting:
            return
        self.data += data[start:end]
        if len(self.data) > self.max_bytes:
            raise _too_large(self.max_bytes)

    def _part_end(self) -> None:
        self._collecting = False
        if self._small_field is None:
            return
        name, text = self._small_field, self._small_text.decode("utf-8", errors="replace")
        self._small_field = None
        if name == LANGUAGES_FIELD:
            try:
                self.languages = parse_language_list(text)
            except InvalidLanguages as exc:
                raise invalid_field(LANGUAGES_FIELD, str(exc), text) from None
        else:
            self.force_ocr = parse_flag(name, text)


async def read_image_upload(request: Request, *, max_bytes: int, field_name: str = "file") -> ImageUpload:
    """The document sent as multipart/form-data field `field_name`, with the codes of the
    optional `languages` field (`vi,en`) and the optional `force_ocr` flag.

    Raises HTTPException: 413 when the body is larger than `max_bytes` (from Content-Length
    before reading, or while reading), 415 when the body is not multipart or the file is not
    an image or a PDF, 422 when the field is missing, `languages` is not a short list of
    two-letter codes or `force_ocr` not a boolean, 400 when it is empty or the body is malformed.
    """
    media_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the image as multipart/form-data with a '{field_name}' field",
        )
    body_limit = max_bytes + MULTIPART_OVERHEAD_BYTES
    declared_length = request.headers.get("content-length")
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > body_limit:
        raise _too_large(max_bytes)

    collector = _FilePartCollector(field_name, max_bytes)
    received = 0
    try:
        with span("gateway.upload.read") as read_span:
            parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
            async for chunk in request.stream():
                received += len(chunk)
                if received > body_limit:
                    raise _too_large(max_bytes)
                parser.write(chunk)
            parser.finalize()
            if read_span is not None:
                read_span.set_attribute("ocrmesh.upload_bytes", received)
    except FormParserError as exc:
        log.info("malformed multipart body", extra={"error": str(exc)})
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST, detail="malformed multipart body"
        ) from None

    if not collector.found:
        raise _missing_file(field_name)
    if not collector.data:
        raise HTTPException(status_code=status.HTTP_400_BAD_REQUEST, detail="the uploaded file is empty")
    sniffed = sniff_image_type(bytes(collector.data[:16]))
    if sniffed is None:
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"the uploaded file is not an image or a PDF this service reads: {SUPPORTED_FORMATS}",
        )
    return ImageUpload(
        data=bytes(collector.data),
        filename=collector.filename,
        content_type=sniffed,
        languages=collector.languages,
        force_ocr=collector.force_ocr,
    )
