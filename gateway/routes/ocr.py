"""/ocr and /ocr/stream: an uploaded image to OcrService.Recognize, as one JSON result or
as a stream of events flushed one by one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import grpc
from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import StreamingResponse

from gateway.deps import BearerToken, CurrentUser, OcrStub, SettingsDep
from gateway.errors import error_responses, http_error_from_rpc, internal_error_detail, rpc_errors
from gateway.ocr_events import EVENT_STREAM, NDJSON, StreamFormat, negotiate_stream_format
from gateway.schemas import LanguageOut, LanguagesOut, OcrResultOut
from gateway.uploads import MULTIPART_IMAGE_BODY, SUPPORTED_FORMATS, read_image_upload
from ocrmesh.ocr.v1 import ocr_pb2
from ocrmesh.platform.grpc_client import bearer_metadata
from ocrmesh.rules.ocr_events import (
    CompletedEvent,
    ErrorEvent,
    Line,
    LineEvent,
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
        400: "Empty file, a malformed multipart body, or an image ocr_svc cannot read (its message "
        "says why: corrupt, too many pixels, a decompression bomb).",
        401: "Missing, invalid, expired or revoked bearer token.",
        413: "The upload is larger than GATEWAY_MAX_UPLOAD_BYTES.",
        415: f"Not multipart/form-data, or the file is not a {SUPPORTED_FORMATS} image.",
        422: "No `file` field, or `languages` is not a short list of two-letter codes or names a "
        "language this deployment does not read (the message lists those it reads).",
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


async def _start_recognize(
    request: Request, ocr: OcrStub, token: str, settings: SettingsDep
) -> RecognizeCall:
    upload = await read_image_upload(request, max_bytes=settings.gateway_max_upload_bytes)
    return ocr.Recognize(
        ocr_pb2.RecognizeRequest(image=upload.data, filename=upload.filename, languages=upload.languages),
        metadata=bearer_metadata(token),
        timeout=settings.ocr_timeout_seconds,
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


@router.post(
    OCR_PATH,
    openapi_extra=MULTIPART_IMAGE_BODY,
    responses=_ERRORS,
    summary="The text in an image, as one result once recognition is complete",
)
async def recognize(
    request: Request, user: CurrentUser, token: BearerToken, ocr: OcrStub, settings: SettingsDep
) -> OcrResultOut:
    call = await _start_recognize(request, ocr, token, settings)
    started: StartedEvent | None = None
    lines: list[Line] = []
    completed: CompletedEvent | None = None
    try:
        async with _cancelled_if_client_leaves(request, call):
            with rpc_errors(OCR):
                async for response in call:
                    event = event_from_proto(response)
                    if isinstance(event, StartedEvent):
                        started = event
                    elif isinstance(event, LineEvent):
                        # A LineEvent is a Line: in the result it is written without `type`.
                        lines.append(event)
                    elif isinstance(event, CompletedEvent):
                        completed = event
    finally:
        call.cancel()  # a no-op after a finished call; stops ocr_svc's work if this task is cancelled
    if completed is None:
        raise HTTPException(status_code=status.HTTP_502_BAD_GATEWAY, detail=_NO_RESULT)
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
    )


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


async def _cancel_when_client_leaves(request: Request, call: RecognizeCall) -> None:
    # The body has been read whole by now: the next ASGI message can only be the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            log.info("client left before the OCR result; cancelling the call")
            call.cancel()
            return


@asynccontextmanager
async def _cancelled_if_client_leaves(request: Request, call: RecognizeCall) -> AsyncIterator[None]:
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
