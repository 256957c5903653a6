"""Exit codes scripts rely on: HTTP statuses and gRPC codes map to them through one table,
and several files' results aggregate to the worst."""

from __future__ import annotations

import grpc
import httpx
import pytest

from ocrmesh_cli.client import error_detail, http_error, normalize_url
from ocrmesh_cli.errors import ExitCode, exit_code_for_grpc, exit_code_for_http, worst


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ExitCode.REJECTED),
        (401, ExitCode.AUTH),
        (403, ExitCode.AUTH),
        (413, ExitCode.REJECTED),
        (415, ExitCode.REJECTED),
        (422, ExitCode.REJECTED),
        (429, ExitCode.UNAVAILABLE),
        (502, ExitCode.UNAVAILABLE),
        (503, ExitCode.UNAVAILABLE),
        (504, ExitCode.UNAVAILABLE),
        (404, ExitCode.FAILURE),
        (500, ExitCode.FAILURE),
    ],
)
def test_http_statuses_map_to_exit_codes(status: int, code: ExitCode) -> None:
    assert exit_code_for_http(status) == code


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, ExitCode.REJECTED),
        (grpc.StatusCode.UNAUTHENTICATED, ExitCode.AUTH),
        (grpc.StatusCode.PERMISSION_DENIED, ExitCode.AUTH),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ExitCode.UNAVAILABLE),
        (grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
        (grpc.StatusCode.DEADLINE_EXCEEDED, ExitCode.UNAVAILABLE),
        (grpc.StatusCode.INTERNAL, ExitCode.FAILURE),
    ],
)
def test_grpc_codes_map_to_exit_codes(status: grpc.StatusCode, code: ExitCode) -> None:
    assert exit_code_for_grpc(status) == code


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], ExitCode.OK),
        ([ExitCode.OK, ExitCode.OK], ExitCode.OK),
        ([ExitCode.OK, ExitCode.REJECTED], ExitCode.REJECTED),
        ([ExitCode.REJECTED, ExitCode.FAILURE], ExitCode.FAILURE),
        ([ExitCode.FAILURE, ExitCode.AUTH, ExitCode.REJECTED], ExitCode.AUTH),
        ([ExitCode.AUTH, ExitCode.UNAVAILABLE, ExitCode.OK], ExitCode.UNAVAILABLE),
    ],
)
def test_several_files_exit_with_the_worst_code(codes: list[ExitCode], expected: ExitCode) -> None:
    assert worst(codes) == expected


def test_an_error_shows_the_gateways_detail_and_a_busy_answer_says_when_to_retry() -> None:
    busy = http_error(429, b'{"detail": "queue full"}', httpx.Headers({"Retry-After": "2"}), what="page.png")
    assert busy.code == ExitCode.UNAVAILABLE
    assert busy.message == "page.png: queue full (HTTP 429)"
    assert busy.retry_after == 2.0
    refused = http_error(401, b'{"detail": "token expired"}', httpx.Headers(), what="me")
    assert refused.code == ExitCode.AUTH
    assert "ocrmesh login" in refused.message
    assert refused.retry_after is None
    elsewhere = http_error(404, b"<html>Not Found</html>", httpx.Headers(), what="login")
    assert (elsewhere.code, elsewhere.message) == (
        ExitCode.FAILURE,
        "login: <html>Not Found</html>; is --url an ocrmesh gateway? (HTTP 404)",
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"detail": "invalid or expired code"}', "invalid or expired code"),
        (b'{"detail": [{"loc": ["body", "email"], "msg": "Field required"}]}', "email: Field required"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "no details"),
    ],
)
def test_error_details_are_read_from_every_shape_of_body(body: bytes, detail: str) -> None:
    assert error_detail(body) == detail


@pytest.mark.parametrize("url", ["ftp://host", "localhost:8000", "http://", "not a url"])
def test_a_gateway_url_must_be_absolute_http(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        normalize_url(url)


def test_a_gateway_url_loses_its_trailing_slash() -> None:
    assert normalize_url(" https://ocr.example.com/ ") == "https://ocr.example.com"
