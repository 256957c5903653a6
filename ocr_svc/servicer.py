"""gRPC entrypoint: authenticate, run the pipeline, translate events and errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from ocr_svc.images import InvalidImage
from ocr_svc.languages import LanguageRouter, Route, UnsupportedLanguage
from ocr_svc.notifications import CompletionMailer, completion_email
from ocr_svc.per_user import CallsPerUser, TooManyCalls
from ocr_svc.pipeline import Completed, LineRecognized, OcrEvent, OcrPipeline, Overloaded, Started, Warming
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform import metadata
from ocrmesh.platform.telemetry import set_user_id
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
    # A worker that is loading its engine: not the caller's fault, and over in seconds.
    Warming: grpc.StatusCode.UNAVAILABLE,
}
# Seconds a caller refused by a warming worker should wait.
WARMING_RETRY_AFTER_S = 1
# Trailing metadata with the seconds after which a refused call may succeed (the gateway's
# Retry-After).
RETRY_AFTER_KEY = metadata.RETRY_AFTER_SECONDS


def to_response(event: OcrEvent) -> ocr_pb2.RecognizeResponse:
    """The wire form of a pipeline event."""
    if isinstance(event, Started):
        return ocr_pb2.RecognizeResponse(
            started=ocr_pb2.Started(engine=event.engine, image_width=event.width, image_height=event.height)
        )
    if isinstance(event, LineRecognized):
        line = event.line
        return ocr_pb2.RecognizeResponse(
            line=ocr_pb2.Line(
                index=event.index,
                block=event.block,
                text=line.text,
                confidence=line.confidence,
                box=[ocr_pb2.Point(x=x, y=y) for x, y in line.box],
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
        )
    )


def _error_message(exc: Exception) -> str:
    return exc.reason if isinstance(exc, InvalidImage) else str(exc)


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
            if len(request.filename) > MAX_FILENAME_LENGTH:
                raise InvalidRequest(f"filename is longer than {MAX_FILENAME_LENGTH} characters")
            # Before the call holds anything: a language not read here costs nothing.
            route = self._languages.route(request.languages)
            with self._per_user.hold(claims.user_id):
                async with contextlib.aclosing(self._recognize(request, claims, route)) as responses:
                    async for response in responses:
                        yield response
        except tuple(ERROR_STATUS) as exc:
            if isinstance(exc, TooManyCalls):
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(exc.retry_after_seconds)),))
            elif isinstance(exc, Warming):
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(WARMING_RETRY_AFTER_S)),))
            elif isinstance(exc, UnsupportedLanguage):
                context.set_trailing_metadata(bad_request_metadata(LANGUAGES_FIELD, str(exc)))
            await context.abort(ERROR_STATUS[type(exc)], _error_message(exc))

    async def _recognize(
        self, request: ocr_pb2.RecognizeRequest, claims: TokenClaims, route: Route
    ) -> AsyncGenerator[ocr_pb2.RecognizeResponse, None]:
        async with contextlib.aclosing(self._pipeline.recognize(request.image, route)) as events:
            async for event in events:
                if isinstance(event, Completed):
                    # Queued before the last event goes out: the work is done even if the
                    # caller disconnects now. Never blocks, never fails the call.
                    self._mailer.submit(
                        completion_email(
                            claims,
                            full_text=event.full_text,
                            line_count=event.line_count,
                            filename=request.filename,
                        )
                    )
                yield to_response(event)
