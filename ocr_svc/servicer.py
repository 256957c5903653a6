"""gRPC entrypoint: authenticate, run the pipeline, translate events and errors; and
RenderDocument, the same recognition streamed back as a file (`ocr_svc.rendering`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from ocr_svc.engines.base import Quad
from ocr_svc.images import InvalidImage
from ocr_svc.languages import LanguageRouter, Route, UnsupportedLanguage
from ocr_svc.notifications import CompletionMailer, completion_email
from ocr_svc.per_user import CallsPerUser, TooManyCalls, TooManyPages
from ocr_svc.pipeline import (
    Completed,
    LineRecognized,
    OcrEvent,
    OcrPipeline,
    Overloaded,
    PageStarted,
    Started,
    Warming,
)
from ocr_svc.rendering import FORMATS, RenderFormat, RenderingFailed, render
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform import metadata
from ocrmesh.platform.telemetry import set_user_id
from ocrmesh.rules import ocr_events
from ocrmesh.rules.document_refusals import DocumentRefusal, refusal_metadata
from ocrmesh.rules.tokens import TokenClaims

Authenticate = Callable[[aio.ServicerContext[Any, Any]], Awaitable[TokenClaims]]

MAX_FILENAME_LENGTH = 255


class InvalidRequest(Exception):
    """A request field other than the image is wrong."""


# Domain exceptions -> gRPC status: the one place where they are translated.
ERROR_STATUS: dict[type[Exception], grpc.StatusCode] = {
    InvalidImage: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    UnsupportedLanguage: grpc.StatusCode.INVALID_ARGUMENT,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooManyCalls: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooManyPages: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # The recognised document could not be written in the asked format (its own fault:
    # a PDF that PDFium reads but the PDF writer cannot graft onto).
    RenderingFailed: grpc.StatusCode.INVALID_ARGUMENT,
    # A worker that is loading its engine: not the caller's fault, and over in seconds.
    Warming: grpc.StatusCode.UNAVAILABLE,
}
# Seconds a caller refused by a warming worker should wait.
WARMING_RETRY_AFTER_S = 1
# Trailing metadata with the seconds after which a refused call may succeed (the gateway's
# Retry-After).
RETRY_AFTER_KEY = metadata.RETRY_AFTER_SECONDS

# RenderDocument's formats: the proto's enum -> `ocr_svc.rendering.FORMATS`.
OUTPUT_FORMATS: dict[int, str] = {
    ocr_pb2.OUTPUT_FORMAT_TXT: "txt",
    ocr_pb2.OUTPUT_FORMAT_HOCR: "hocr",
    ocr_pb2.OUTPUT_FORMAT_ALTO: "alto",
    ocr_pb2.OUTPUT_FORMAT_PDF: "pdf",
}


def _points(quad: Quad) -> list[ocr_pb2.Point]:
    return [ocr_pb2.Point(x=x, y=y) for x, y in quad]


def to_response(event: OcrEvent) -> ocr_pb2.RecognizeResponse:
    """The wire form of a pipeline event."""
    if isinstance(event, Started):
        return ocr_pb2.RecognizeResponse(
            started=ocr_pb2.Started(
                engine=event.engine,
                image_width=event.width,
                image_height=event.height,
                page_count=event.page_count,
                document_format=event.document_format,
            )
        )
    if isinstance(event, PageStarted):
        return ocr_pb2.RecognizeResponse(
            page=ocr_pb2.Page(
                page=event.page,
                width=event.width,
                height=event.height,
                rotation=event.rotation,
                skew=event.skew,
                source=event.source,
                dpi=event.dpi,
            )
        )
    if isinstance(event, LineRecognized):
        line = event.line
        return ocr_pb2.RecognizeResponse(
            line=ocr_pb2.Line(
                index=event.index,
                block=event.block,
                text=line.text,
                confidence=line.confidence,
                box=_points(line.box),
                page=event.page,
                words=[
                    ocr_pb2.Word(text=word.text, confidence=word.confidence, box=_points(word.box))
                    for word in line.words
                ],
            )
        )
    timings = event.timings
    return ocr_pb2.RecognizeResponse(
        completed=ocr_pb2.Completed(
            full_text=event.full_text,
            line_count=event.line_count,
            timings=ocr_pb2.Timings(
                decode_ms=timings.decode_ms,
                detect_ms=timings.detect_ms,
                recognize_ms=timings.recognize_ms,
                total_ms=timings.total_ms,
            ),
            page_count=event.page_count,
        )
    )


def _error_message(exc: Exception) -> str:
    return exc.reason if isinstance(exc, InvalidImage) else str(exc)


def _status_of(exc: Exception) -> grpc.StatusCode:
    for kind in type(exc).__mro__:
        if kind in ERROR_STATUS:
            return ERROR_STATUS[kind]
    return grpc.StatusCode.INTERNAL


LANGUAGES_FIELD = "languages"


def bad_request_metadata(field: str, description: str) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a google.rpc.BadRequest that names `field`: the rich
    status a caller (the gateway: HTTP 422) reads to know which field was wrong."""
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=description, details=[detail])
    )
    return tuple(
        (str(key), value if isinstance(value, bytes) else value.encode())
        for key, value in status.trailing_metadata
    )


class OcrServicer(ocr_pb2_grpc.OcrServiceServicer):
    """`ocrmesh.ocr.v1.OcrService`."""

    def __init__(
        self,
        pipeline: OcrPipeline,
        authenticate: Authenticate,
        mailer: CompletionMailer,
        per_user: CallsPerUser | None = None,
        languages: LanguageRouter | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._authenticate = authenticate
        self._mailer = mailer
        self._per_user = per_user or CallsPerUser(0)
        self._languages = languages or LanguageRouter(pipeline.engine)

    async def ListLanguages(
        self, request: ocr_pb2.ListLanguagesRequest, context: aio.ServicerContext[Any, Any]
    ) -> ocr_pb2.ListLanguagesResponse:
        await self._authenticate(context)
        return ocr_pb2.ListLanguagesResponse(
            languages=[
                ocr_pb2.Language(code=item.language.code, name=item.language.name, engine=item.engine)
                for item in self._languages.readable()
            ]
        )

    async def Recognize(
        self, request: ocr_pb2.RecognizeRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ocr_pb2.RecognizeResponse]:
        claims = await self._authenticate(context)
        set_user_id(claims.user_id)
        try:
            # Before the call holds anything: a language not read here costs nothing.
            route = self._route(request)
            with self._per_user.hold(claims.user_id):
                async with contextlib.aclosing(self._events(request, claims, route)) as events:
                    async for event in events:
                        yield to_response(event)
        except tuple(ERROR_STATUS) as exc:
            await self._abort(context, exc)

    async def RenderDocument(
        self, request: ocr_pb2.RenderDocumentRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ocr_pb2.RenderDocumentResponse]:
        """Recognise `request.document` as Recognize does and stream it back rendered: a
        header once the document is opened (refusals come before it, as a status), then
        the file in chunks."""
        claims = await self._authenticate(context)
        set_user_id(claims.user_id)
        try:
            output = self._output_format(request.format)
            document = request.document
            route = self._route(document)
            with self._per_user.hold(claims.user_id):
                async with contextlib.aclosing(self._events(document, claims, route)) as events:
                    started = await anext(events, None)
                    if not isinstance(started, Started):
                        raise RenderingFailed("the document produced no pages")
                    yield ocr_pb2.RenderDocumentResponse(
                        header=ocr_pb2.RenderedHeader(
                            content_type=output.content_type,
                            filename=output.filename(document.filename),
                            page_count=started.page_count,
                        )
                    )
                    chunks = render(
                        _as_rules_events(started, events),
                        document.image,
                        output.name,
                        filename=document.filename,
                    )
                    async with contextlib.aclosing(chunks):  # type: ignore[type-var]
                        async for chunk in chunks:
                            yield ocr_pb2.RenderDocumentResponse(chunk=chunk)
        except tuple(ERROR_STATUS) as exc:
            await self._abort(context, exc)

    def _route(self, request: ocr_pb2.RecognizeRequest) -> Route:
        if len(request.filename) > MAX_FILENAME_LENGTH:
            raise InvalidRequest(f"filename is longer than {MAX_FILENAME_LENGTH} characters")
        return self._languages.route(request.languages)

    @staticmethod
    def _output_format(value: int) -> RenderFormat:
        name = OUTPUT_FORMATS.get(value)
        if name is None or name not in FORMATS:
            readable = ", ".join(
                ocr_pb2.OutputFormat.Name(key) for key, known in OUTPUT_FORMATS.items() if known in FORMATS
            )
            raise InvalidRequest(f"format must be one of {readable}")
        return FORMATS[name]

    async def _abort(self, context: aio.ServicerContext[Any, Any], exc: Exception) -> None:
        message = _error_message(exc)
        if isinstance(exc, TooManyCalls):
            context.set_trailing_metadata(((RETRY_AFTER_KEY, str(exc.retry_after_seconds)),))
        elif isinstance(exc, Warming):
            context.set_trailing_metadata(((RETRY_AFTER_KEY, str(WARMING_RETRY_AFTER_S)),))
        elif isinstance(exc, UnsupportedLanguage):
            context.set_trailing_metadata(bad_request_metadata(LANGUAGES_FIELD, str(exc)))
        elif isinstance(exc, InvalidImage) and exc.refusal is not None:
            context.set_trailing_metadata(refusal_metadata(exc.refusal, message))
        elif isinstance(exc, RenderingFailed):
            message = f"the document cannot be rendered: {exc}"
            context.set_trailing_metadata(refusal_metadata(DocumentRefusal.UNREADABLE, message))
        await context.abort(_status_of(exc), message)

    async def _events(
        self, request: ocr_pb2.RecognizeRequest, claims: TokenClaims, route: Route
    ) -> AsyncGenerator[OcrEvent, None]:
        """The pipeline's events for `request`, its pages counted against the user's page
        budget from the moment their number is known (the document opened, before any page
        is rendered) to the end."""
        with contextlib.ExitStack() as pages:

            def admit_pages(page_count: int) -> None:
                pages.enter_context(self._per_user.hold_pages(claims.user_id, page_count))

            recognizing = self._pipeline.recognize(
                request.image, route, force_ocr=request.force_ocr, admit_pages=admit_pages
            )
            async with contextlib.aclosing(recognizing) as events:
                async for event in events:
                    if isinstance(event, Completed):
                        # Queued before the last event goes out: the work is done even if
                        # the caller disconnects now. Never blocks, never fails the call.
                        self._mailer.submit(
                            completion_email(
                                claims,
                                full_text=event.full_text,
                                line_count=event.line_count,
                                filename=request.filename,
                            )
                        )
                    yield event


async def _as_rules_events(
    started: Started, events: AsyncIterator[OcrEvent]
) -> AsyncGenerator[ocr_events.OcrEvent, None]:
    """The pipeline's events as the JSON event model the renderers read."""
    first = ocr_events.event_from_proto(to_response(started))
    if first is not None:
        yield first
    async for event in events:
        converted = ocr_events.event_from_proto(to_response(event))
        if converted is not None:
            yield converted
