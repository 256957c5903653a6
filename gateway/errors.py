"""gRPC status -> HTTP status: the one table, and the error responses built from it."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import grpc
from fastapi import HTTPException, status
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from pydantic import BaseModel, Field

from ocrmesh.platform import metadata
from ocrmesh.platform.request_context import current_request_id
from ocrmesh.rules.document_refusals import DocumentRefusal, refusal_from_metadata

log = logging.getLogger(__name__)

# As grpc-gateway maps them (DESIGN.md). Codes not listed are server faults: 500.
GRPC_TO_HTTP: Final[Mapping[grpc.StatusCode, int]] = {
    grpc.StatusCode.INVALID_ARGUMENT: status.HTTP_400_BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: status.HTTP_400_BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: status.HTTP_400_BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: status.HTTP_401_UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: status.HTTP_403_FORBIDDEN,
    grpc.StatusCode.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: status.HTTP_409_CONFLICT,
    grpc.StatusCode.ABORTED: status.HTTP_409_CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: status.HTTP_429_TOO_MANY_REQUESTS,
    grpc.StatusCode.CANCELLED: 499,  # client closed request, as grpc-gateway and nginx say
    grpc.StatusCode.UNIMPLEMENTED: status.HTTP_501_NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: status.HTTP_504_GATEWAY_TIMEOUT,
}

# Login of a user who has not verified their email: the credentials are right, the account
# may not be used yet. DESIGN.md asks for 403 here rather than grpc-gateway's 400.
LOGIN_OVERRIDES: Final[Mapping[grpc.StatusCode, int]] = {
    grpc.StatusCode.FAILED_PRECONDITION: status.HTTP_403_FORBIDDEN,
}

# ocr_svc's refusals of a document (INVALID_ARGUMENT with a google.rpc.ErrorInfo naming
# the reason, ocrmesh.rules.document_refusals): what each means for the REST client.
DOCUMENT_REFUSAL_STATUS: Final[Mapping[DocumentRefusal, int]] = {
    DocumentRefusal.TOO_MANY_PAGES: status.HTTP_413_CONTENT_TOO_LARGE,
    DocumentRefusal.PAGE_TOO_LARGE: status.HTTP_413_CONTENT_TOO_LARGE,
    DocumentRefusal.UNSUPPORTED_FORMAT: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    DocumentRefusal.ENCRYPTED: status.HTTP_422_UNPROCESSABLE_CONTENT,
    DocumentRefusal.UNREADABLE: status.HTTP_422_UNPROCESSABLE_CONTENT,
}

# What a caller needs to resend with a token; RFC 6750.
BEARER_CHALLENGE: Final[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


class ErrorOut(BaseModel):
    """The body of every error answer but 422 (FastAPI's list of field errors)."""

    detail: str = Field(description="What went wrong, for a person to read.")


# Answers any route can give, whatever it does: the edge's own limits (gateway.body_limits,
# gateway.client_limits) and the request's JSON body or form not being what it should be.
EDGE_ERRORS: Final[Mapping[int, str]] = {
    status.HTTP_408_REQUEST_TIMEOUT: "The body did not arrive within GATEWAY_BODY_TIMEOUT_SECONDS.",
    status.HTTP_413_CONTENT_TOO_LARGE: "The body is larger than the route's limit.",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "A body of a media type the route does not take.",
    status.HTTP_429_TOO_MANY_REQUESTS: "Too many requests in flight from this address; see Retry-After.",
}


def error_responses(descriptions: Mapping[int, str], *, edge: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses in `descriptions` (and, with `edge`, those
    of EDGE_ERRORS not named there), each with the `ErrorOut` body. A 422 keeps FastAPI's
    own validation-error body."""
    merged = {**EDGE_ERRORS, **descriptions} if edge else dict(descriptions)
    responses: dict[int | str, dict[str, Any]] = {}
    for code, text in sorted(merged.items()):
        responses[code] = {"description": text}
        if code != status.HTTP_422_UNPROCESSABLE_CONTENT:
            responses[code]["model"] = ErrorOut
        if code in _ERROR_HEADERS:
            responses[code]["headers"] = _ERROR_HEADERS[code]
    return responses


_ERROR_HEADERS: Final[Mapping[int, dict[str, Any]]] = {
    status.HTTP_401_UNAUTHORIZED: {
        "WWW-Authenticate": {"description": "`Bearer` (RFC 6750).", "schema": {"type": "string"}}
    },
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "Retry-After": {
            "description": "Seconds until a retry may succeed.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def internal_error_detail() -> str:
    """The whole body of a 500: nothing about the cause, only the id to quote."""
    return f"internal error (request id {current_request_id() or 'unknown'})"


def http_status_for(code: grpc.StatusCode, overrides: Mapping[grpc.StatusCode, int] | None = None) -> int:
    """The HTTP status for a gRPC status code."""
    if overrides and code in overrides:
        return overrides[code]
    return GRPC_TO_HTTP.get(code, status.HTTP_500_INTERNAL_SERVER_ERROR)


def rpc_error_detail(code: grpc.StatusCode, details: str | None, http_status: int, service: str) -> str:
    """The `detail` a client sees for a failed call to `service`.

    Client mistakes (4xx) carry the service's own human message; server-side failures carry
    a fixed sentence, because their details may name hosts, files or exceptions.
    """
    if http_status < 500:
        return details or code.name.replace("_", " ").lower()
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"the {service} service is unavailable, try again shortly"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the {service} service did not answer in time"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return f"the {service} service does not support this call"
    return internal_error_detail()


def http_error_from_rpc(
    error: grpc.aio.AioRpcError,
    *,
    service: str,
    overrides: Mapping[grpc.StatusCode, int] | None = None,
) -> HTTPException:
    """The HTTPException that answers a failed gRPC call to `service` ("auth", "ocr")."""
    code = error.code()
    http_status = http_status_for(code, overrides)
    if http_status >= 500:
        # The wire gets a fixed sentence; the log keeps what really happened.
        log.warning(
            "%s call failed",
            service,
            extra={"service_name": service, "grpc_code": code.name, "grpc_details": error.details()},
        )
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        refusal = refusal_from_metadata(error.trailing_metadata())
        if refusal is not None:
            return document_refused(refusal, rpc_error_detail(code, error.details(), 400, service))
        violations = field_violations(error)
        if violations:
            # A named request field is wrong: the REST answer for that is FastAPI's 422.
            return HTTPException(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=[
                    {"type": "value_error", "loc": ["body", field], "msg": description, "input": None}
                    for field, description in violations
                ],
            )
    headers = dict(BEARER_CHALLENGE) if http_status == status.HTTP_401_UNAUTHORIZED else None
    if http_status == status.HTTP_429_TOO_MANY_REQUESTS:
        retry_after = _retry_after(error)
        if retry_after is not None:
            headers = {"Retry-After": retry_after}
    return HTTPException(
        status_code=http_status,
        detail=rpc_error_detail(code, error.details(), http_status, service),
        headers=headers,
    )


# The multipart field a refused document came in (gateway.uploads).
DOCUMENT_FIELD: Final = "file"


def document_refused(refusal: DocumentRefusal, message: str) -> HTTPException:
    """The answer to a document ocr_svc refused: 413, 415 or 422 (DOCUMENT_REFUSAL_STATUS)
    with ocr_svc's sentence. A 422 keeps the shape of every 422 (FastAPI's list of field
    errors, here naming the `file` field), so the OpenAPI schema of 422 stays true."""
    http_status = DOCUMENT_REFUSAL_STATUS[refusal]
    if http_status == status.HTTP_422_UNPROCESSABLE_CONTENT:
        return HTTPException(
            status_code=http_status,
            detail=[{"type": "value_error", "loc": ["body", DOCUMENT_FIELD], "msg": message, "input": None}],
        )
    return HTTPException(status_code=http_status, detail=message)


# Where gRPC's rich status (google.rpc.Status with details) travels.
STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(field, description) of each google.rpc.BadRequest field violation the failed call
    carries (a service names the request field that was wrong this way); [] for none."""
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            details = status_pb2.Status.FromString(value).details
        except DecodeError:
            return []
        violations = []
        for detail in details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                violations += [(v.field, v.description) for v in bad_request.field_violations]
        return violations
    return []


# Trailing metadata a service sets on RESOURCE_EXHAUSTED: seconds until a retry may work.
RETRY_AFTER_KEY: Final = metadata.RETRY_AFTER_SECONDS


def _retry_after(error: grpc.aio.AioRpcError) -> str | None:
    for key, value in error.trailing_metadata() or ():
        if key == RETRY_AFTER_KEY:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            if text.isdigit():
                return text
    return None


@contextmanager
def rpc_errors(service: str, overrides: Mapping[grpc.StatusCode, int] | None = None) -> Iterator[None]:
    """Turn a failed gRPC call to `service` inside the block into its HTTPException."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise http_error_from_rpc(exc, service=service, overrides=overrides) from None
