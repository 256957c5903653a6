"""The one gRPC -> HTTP status table, and what a client may see of a failure."""

from __future__ import annotations

import grpc
import pytest

from gateway.errors import LOGIN_OVERRIDES, http_status_for, rpc_error_detail


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.DATA_LOSS, 500),
    ],
)
def test_grpc_codes_map_to_http_statuses_as_grpc_gateway_does(code: grpc.StatusCode, status: int) -> None:
    assert http_status_for(code) == status


def test_unverified_login_is_403_only_where_the_login_override_applies() -> None:
    assert http_status_for(grpc.StatusCode.FAILED_PRECONDITION, LOGIN_OVERRIDES) == 403
    assert http_status_for(grpc.StatusCode.UNAUTHENTICATED, LOGIN_OVERRIDES) == 401


def test_client_errors_carry_the_services_message() -> None:
    detail = rpc_error_detail(
        grpc.StatusCode.ALREADY_EXISTS, "an account with this email exists", 409, "auth"
    )
    assert detail == "an account with this email exists"


def test_a_client_error_without_a_message_gets_a_readable_one() -> None:
    assert rpc_error_detail(grpc.StatusCode.NOT_FOUND, "", 404, "auth") == "not found"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, 503, "the ocr service is unavailable, try again shortly"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "the ocr service did not answer in time"),
        (grpc.StatusCode.INTERNAL, 500, "internal error (request id unknown)"),
    ],
)
def test_server_side_failures_never_show_their_details(
    code: grpc.StatusCode, status: int, expected: str
) -> None:
    details = "failed to connect to ipv4:10.0.0.7:50052; /srv/ocr/models/det.onnx: Traceback ..."
    assert rpc_error_detail(code, details, status, "ocr") == expected


def _refused(reason: str | None, message: str = "the PDF is password-protected") -> grpc.aio.AioRpcError:
    from ocrmesh.rules.document_refusals import DocumentRefusal, refusal_metadata

    trailing = (
        grpc.aio.Metadata(*refusal_metadata(DocumentRefusal(reason), message))
        if reason
        else grpc.aio.Metadata()
    )
    return grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), trailing, details=message
    )


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("TOO_MANY_PAGES", 413),
        ("PAGE_TOO_LARGE", 413),
        ("UNSUPPORTED_FORMAT", 415),
        ("ENCRYPTED", 422),
        ("UNREADABLE", 422),
        (None, 400),
    ],
)
def test_refused_documents_get_the_status_of_their_reason_with_the_services_words(
    reason: str | None, status: int
) -> None:
    from gateway.errors import http_error_from_rpc

    error = http_error_from_rpc(_refused(reason), service="ocr")
    assert error.status_code == status
    detail = error.detail
    message = detail[0]["msg"] if isinstance(detail, list) else detail
    assert message == "the PDF is password-protected"
