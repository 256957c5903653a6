"""/ocr and /ocr/stream: an uploaded image or document (multi-page TIFF, PDF) to ocr_svc:
`/ocr` answers one JSON result (OcrService.Recognize) or a rendered document streamed as
ocr_svc produces it (OcrService.RenderDocument: plain text, hOCR, ALTO, a searchable PDF);
`/ocr/stream` answers the events, flushed one by one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

import grpc
from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import Response, StreamingResponse

from gateway.deps import BearerToken, CurrentUser, OcrStub, SettingsDep
from gateway.document_formats import (
    ACCEPTABLE,
    MEDIA_TYPES,
    OUTPUT_FORMATS,
    SUPPORTED,
    DocumentFormat,
    content_disposition,
    negotiate_document_format,
    safe_filename,
)
from gateway.errors import error_responses, http_error_from_rpc, internal_error_detail, rpc_errors
from gateway.ocr_events import EVENT_STREAM, NDJSON, StreamFormat, negotiate_stream_format
from gateway.schemas import LanguageOut, LanguagesOut, OcrResultOut
from gateway.uploads import MULTIPART_IMAGE_BODY, SUPPORTED_FORMATS, ImageUpload, read_image_upload
from ocrmesh.ocr.v1 import ocr_pb2
from ocrmesh.platform.grpc_client import bearer_metadata
from ocrmesh.rules.ocr_events import (
    CompletedEvent,
    ErrorEvent,
    Line,
    LineEvent,
    Page,
    PageEvent,
    StartedEvent,
    event_from_proto,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["ocr"])

OCR = "ocr"
OCR_PATH = "/ocr"
OCR_STREAM_PATH = "/ocr/stream"
OCR_LANGUAGES_PATH = "/ocr/languages"
# The routes that take an upload: GATEWAY_MAX_UPLOAD_BYTES and multipart (gateway.body_limits).
UPLOAD_PATHS = (OCR_PATH, OCR_STREAM_PATH)
# Proxies (nginx) buffer responses unless told not to; caches must not keep a stream.
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_ERRORS = error_responses(
    {
        400: "Empty file, a malformed multipart body, or a file ocr_svc refuses without a reason of "
        "its own (its message says why).",
        401: "Missing, invalid, expired or revoked bearer token.",
        413: "The upload is larger than GATEWAY_MAX_UPLOAD_BYTES, or ocr_svc refused the document as "
        "too large: more pages than OCR_MAX_PAGES, or a page whose raster is over its pixel cap (the "
        "message says which, and the limit).",
        415: f"Not multipart/form-data, or the file is not {SUPPORTED_FORMATS} (by its bytes, or as "
        "ocr_svc found when it opened it).",
        422: "No `file` field; `languages` is not a short list of two-letter codes or names a "
        "language this deployment does not read (the message lists those it reads); `force_ocr` "
        "is not a boolean; or ocr_svc cannot read the document: a password-protected PDF, a "
        "truncated, corrupt or fake file (the message, on `file`, says which).",
        429: "Too many uploads in flight from this address or user, or ocr_svc's queue is full; "
        "see Retry-After.",
        502: "ocr_svc ended the call without a result.",
        503: "ocr_svc (or auth_svc's keys) unavailable.",
        504: "OCR did not finish within OCR_TIMEOUT_SECONDS.",
    }
)

RecognizeCall = grpc.aio.UnaryStreamCall[ocr_pb2.RecognizeRequest, ocr_pb2.RecognizeResponse]

_NO_RESULT = "the OCR service ended the stream without a result"
# nginx's status for a client that closed the connection before the answer (never seen by it).
CLIENT_CLOSED_REQUEST = 499


RenderCall = grpc.aio.UnaryStreamCall[ocr_pb2.RenderDocumentRequest, ocr_pb2.RenderDocumentResponse]


def _document(upload: ImageUpload) -> ocr_pb2.RecognizeRequest:
    return ocr_pb2.RecognizeRequest(
        image=upload.data,
        filename=upload.filename,
        languages=upload.languages,
        force_ocr=upload.force_ocr,
    )


async def _start_recognize(
    request: Request, ocr: OcrStub, token: str, settings: SettingsDep
) -> RecognizeCall:
    upload = await read_image_upload(request, max_bytes=settings.gateway_max_upload_bytes)
    return ocr.Recognize(
        _document(upload), metadata=bearer_metadata(token), timeout=settings.ocr_timeout_seconds
    )


@router.get(
    OCR_LANGUAGES_PATH,
    responses=error_responses(
        {
            401: "Missing, invalid, expired or revoked bearer token.",
            503: "ocr_svc (or auth_svc's keys) unavailable.",
            504: "ocr_svc did not answer within OCR_TIMEOUT_SECONDS.",
        },
        edge=False,
    ),
    summary="The languages this deployment reads (the `languages` field of /ocr takes their codes)",
)
async def list_languages(
    user: CurrentUser, token: BearerToken, ocr: OcrStub, settings: SettingsDep
) -> LanguagesOut:
    with rpc_errors(OCR):
        response = await ocr.ListLanguages(
            ocr_pb2.ListLanguagesRequest(),
            metadata=bearer_metadata(token),
            timeout=settings.ocr_timeout_seconds,
        )
    return LanguagesOut(
        languages=[
            LanguageOut(code=language.code, name=language.name, engine=language.engine)
            for language in response.languages
        ]
    )


_TEXT_BODY: Final[dict[str, Any]] = {"schema": {"type": "string"}}
# The answers of /ocr besides JSON (FastAPI adds the JSON one from the response model).
_RENDERED_CONTENT: Final[dict[str, Any]] = {
    MEDIA_TYPES[DocumentFormat.TXT].split(";")[0]: _TEXT_BODY,
    MEDIA_TYPES[DocumentFormat.HOCR].split(";")[0]: _TEXT_BODY,
    MEDIA_TYPES[DocumentFormat.ALTO]: _TEXT_BODY,
    MEDIA_TYPES[DocumentFormat.PDF]: {"schema": {"type": "string", "format": "binary"}},
}
PAGE_COUNT_HEADER: Final = "X-Page-Count"
_RENDERED_HEADERS: Final[dict[str, Any]] = {
    "Content-Disposition": {
        "description": "A rendered document (not JSON): `attachment` with the file's name.",
        "schema": {"type": "string"},
    },
    PAGE_COUNT_HEADER: {
        "description": "A rendered document (not JSON): its number of pages.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}
_FORMAT_DESCRIPTION: Final = (
    "What to answer with: `json` (the result, the default), `txt` (text/plain, pages separated by "
    "a form feed), `hocr` (hOCR 1.2, text/vnd.hocr+html), `alto` (ALTO 4, application/xml) or `pdf` "
    f"(a searchable PDF). Without it the Accept header chooses ({ACCEPTABLE}; none of them: 406); "
    "another value is a 422 listing the formats."
)
# Read as an optional enum; stated in OpenAPI by hand, as a plain enum with its default
# (FastAPI would write `anyOf: [enum, null]`, and `null` is no value a query string can carry).
FormatQuery = Annotated[DocumentFormat | None, Query(alias="format", include_in_schema=False)]
_OCR_OPENAPI: Final[dict[str, Any]] = {
    **MULTIPART_IMAGE_BODY,
    "parameters": [
        {
            "name": "format",
            "in": "query",
            "required": False,
            "description": _FORMAT_DESCRIPTION,
            "schema": {"type": "string", "enum": [f.value for f in DocumentFormat], "default": "json"},
        }
    ],
}


@router.post(
    OCR_PATH,
    openapi_extra=_OCR_OPENAPI,
    response_model=OcrResultOut,
    responses={
        200: {
            "description": (
                "The result as JSON, or the document rendered in the format asked for, streamed as "
                "ocr_svc renders it. A failure after the first byte of a rendered document aborts "
                "the connection: a download that ends without its last chunk is incomplete."
            ),
            "content": _RENDERED_CONTENT,
            "headers": _RENDERED_HEADERS,
        },
        **_ERRORS,
        **error_responses(
            {
                406: f"The Accept header names no format this route answers ({ACCEPTABLE}); "
                f"the message lists them. Formats: {SUPPORTED}."
            },
            edge=False,
        ),
    },
    summary="The text in an image or a document: one JSON result, or a text, hOCR, ALTO or "
    "searchable PDF file",
)
async def recognize(
    request: Request,
    user: CurrentUser,
    token: BearerToken,
    ocr: OcrStub,
    settings: SettingsDep,
    output_format: FormatQuery = None,
) -> OcrResultOut | Response:
    # Chosen before the upload is read: a 406 costs the client no upload.
    chosen = output_format or negotiate_document_format(request.headers.get("accept"))
    if chosen is not DocumentFormat.JSON:
        return await _render(request, ocr, token, settings, chosen)
    call = await _start_recognize(request, ocr, token, settings)
    started: StartedEvent | None = None
    pages: list[Page] = []
    lines: list[Line] = []
    completed: CompletedEvent | None = None
    try:
        async with _cancelled_if_client_leaves(request, call):
            with rpc_errors(OCR):
                async for response in call:
                    event = event_from_proto(response)
                    if isinstance(event, StartedEvent):
                        started = event
                    elif isinstance(event, PageEvent):
                        pages.append(Page.model_validate(event.model_dump(exclude={"type"})))
                    elif isinstance(event, LineEvent):
                        # A LineEvent is a Line: in the result it is written without `type`.
                        lines.append(event)
                    elif isinstance(event, CompletedEvent):
                        completed = event
    finally:
        call.cancel()  # a no-op after a finished call; stops ocr_svc's work if this task is cancelled
    if completed is None:
        raise HTTPException(status_code=status.HTTP_502_BAD_GATEWAY, detail=_NO_RESULT)
    if not pages and started is not None:
        # An ocr_svc from before page events read one image: that image is the page.
        pages = [Page(page=1, width=started.image_width, height=started.image_height)]
    return OcrResultOut(
        user_id=user.user_id,
        user_name=user.name,
        user_email=user.email,
        ocr_text=completed.full_text,
        lines=lines,
        engine=started.engine if started else "",
        image_width=started.image_width if started else 0,
        image_height=started.image_height if started else 0,
        timings=completed.timings,
        pages=pages,
    )


class RenderingBrokeOff(Exception):
    """A rendered document failed after its first bytes were sent: raised out of the
    response body so that the server aborts the connection (the body never ends cleanly,
    and the client sees an incomplete download, not a short file)."""


async def _render(
    request: Request, ocr: OcrStub, token: str, settings: SettingsDep, chosen: DocumentFormat
) -> StreamingResponse:
    upload = await read_image_upload(request, max_bytes=settings.gateway_max_upload_bytes)
    call: RenderCall = ocr.RenderDocument(
        ocr_pb2.RenderDocumentRequest(document=_document(upload), format=OUTPUT_FORMATS[chosen]),
        metadata=bearer_metadata(token),
        timeout=settings.ocr_timeout_seconds,
    )
    del upload  # the bytes are in the request message now; nothing here needs them again
    parts = aiter(call)
    header: ocr_pb2.RenderedHeader | None = None
    first_chunk: bytes | None = None
    # Everything up to the first chunk (the document opened, its first page recognised and
    # rendered) can still fail with its own status: wait for it before answering.
    try:
        async with _cancelled_if_client_leaves(request, call):
            with rpc_errors(OCR):
                async for part in parts:
                    kind = part.WhichOneof("part")
                    if kind == "header" and header is None:
                        header = part.header
                    elif kind == "chunk" and header is not None:
                        first_chunk = part.chunk
                        break
    except BaseException:
        call.cancel()
        raise
    if header is None:
        call.cancel()
        raise HTTPException(status_code=status.HTTP_502_BAD_GATEWAY, detail=_NO_RESULT)
    filename = safe_filename(header.filename, chosen)
    log.info(
        "rendered document started",
        extra={"format": chosen.value, "page_count": header.page_count, "document_name": filename},
    )
    return StreamingResponse(
        _relay_chunks(call, parts, first_chunk, chosen),
        media_type=MEDIA_TYPES[chosen],
        headers={
            "Content-Disposition": content_disposition(filename),
            PAGE_COUNT_HEADER: str(max(header.page_count, 0)),
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        },
    )


async def _relay_chunks(
    call: RenderCall,
    parts: AsyncIterator[ocr_pb2.RenderDocumentResponse],
    first_chunk: bytes | None,
    chosen: DocumentFormat,
) -> AsyncIterator[bytes]:
    """Each chunk as it comes (at most 64 KiB each: the gateway holds one at a time, and
    gRPC's flow control holds ocr_svc back while the client reads slowly)."""
    sent = 0
    try:
        if first_chunk is None:
            return  # an empty file: the stream ended after its header
        yield first_chunk
        sent += len(first_chunk)
        async for part in parts:
            if part.WhichOneof("part") == "chunk":
                yield part.chunk
                sent += len(part.chunk)
    except grpc.aio.AioRpcError as exc:
        log.warning(
            "rendered document failed after its first bytes; aborting the connection",
            extra={
                "format": chosen.value,
                "bytes_sent": sent,
                "grpc_code": exc.code().name,
                "grpc_details": exc.details(),
            },
        )
        raise RenderingBrokeOff(f"the {chosen.value} document broke off after {sent} bytes") from None
    finally:
        call.cancel()


@router.post(
    OCR_STREAM_PATH,
    openapi_extra=MULTIPART_IMAGE_BODY,
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "One event per recognised line as it comes: NDJSON (one JSON object per line) by "
                "default, server-sent events when `Accept: text/event-stream`. Events: started, "
                "line..., completed; a failure after the first event arrives as a final `error` event."
            ),
            "content": {
                NDJSON: {"schema": {"type": "string"}},
                EVENT_STREAM: {"schema": {"type": "string"}},
            },
        },
        **_ERRORS,
    },
    summary="The text in an image, streamed line by line as it is recognised",
)
async def recognize_stream(
    request: Request,
    user: CurrentUser,
    token: BearerToken,
    ocr: OcrStub,
    settings: SettingsDep,
    accept: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    stream_format = negotiate_stream_format(accept)
    call = await _start_recognize(request, ocr, token, settings)
    responses = aiter(call)
    # Failures before the first event (bad token, unreadable image, queue full) must be a
    # plain HTTP error, not a 200 stream: so wait for the first event before answering.
    try:
        # Until the response starts, nobody else watches for the client leaving.
        async with _cancelled_if_client_leaves(request, call):
            with rpc_errors(OCR):
                first = await anext(responses)
    except StopAsyncIteration:
        raise HTTPException(status_code=status.HTTP_502_BAD_GATEWAY, detail=_NO_RESULT) from None
    except BaseException:
        call.cancel()
        raise
    log.info("ocr stream started", extra={"user_id": user.user_id, "format": stream_format.media_type})
    return StreamingResponse(
        _relay(call, responses, first, stream_format),
        media_type=stream_format.media_type,
        headers=_STREAM_HEADERS,
    )


async def _cancel_when_client_leaves(request: Request, call: grpc.aio.Call) -> None:
    # The body has been read whole by now: the next ASGI message can only be the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            log.info("client left before the OCR result; cancelling the call")
            call.cancel()
            return


@asynccontextmanager
async def _cancelled_if_client_leaves(request: Request, call: grpc.aio.Call) -> AsyncIterator[None]:
    """Cancel `call` if the client disconnects during the block, and answer 499 then (an
    answer nobody reads, but the access log shows what happened)."""
    watcher = asyncio.create_task(_cancel_when_client_leaves(request, call))
    try:
        yield
    except asyncio.CancelledError:
        if not watcher.done():
            raise  # this task itself is being cancelled (shutdown): not ours to swallow
        raise HTTPException(status_code=CLIENT_CLOSED_REQUEST, detail="client closed request") from None
    finally:
        watcher.cancel()


async def _relay(
    call: RecognizeCall,
    responses: AsyncIterator[ocr_pb2.RecognizeResponse],
    first: ocr_pb2.RecognizeResponse,
    stream_format: StreamFormat,
) -> AsyncIterator[bytes]:
    """Encode each event as it arrives; end with an error event if the stream fails. When
    the client goes away Starlette cancels this generator, and `finally` cancels the call."""
    encode = stream_format.encode
    completed = False
    try:
        event = event_from_proto(first)
        if event is not None:
            completed = isinstance(event, CompletedEvent)
            yield encode(event)
        async for response in responses:
            event = event_from_proto(response)
            if event is None:
                continue
            completed = completed or isinstance(event, CompletedEvent)
            yield encode(event)
        if not completed:
            yield encode(ErrorEvent(status=status.HTTP_502_BAD_GATEWAY, detail=_NO_RESULT))
    except grpc.aio.AioRpcError as exc:
        error = http_error_from_rpc(exc, service=OCR)
        yield encode(ErrorEvent(status=error.status_code, detail=str(error.detail)))
    except Exception:
        log.exception("ocr stream failed")
        yield encode(ErrorEvent(status=status.HTTP_500_INTERNAL_SERVER_ERROR, detail=internal_error_detail()))
    finally:
        call.cancel()
