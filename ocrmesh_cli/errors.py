"""Exit codes that scripts can rely on, and the one failure type every command raises.

    0 ok, 1 any other failure, 2 usage, 3 auth, 4 rejected input, 5 service unavailable.

Commands raise `CliError(code, message)`; the entrypoint prints the message on one line of
stderr and exits with the code. The tables below are the only place that decides which
HTTP status or gRPC code becomes which exit code.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # grpc is imported only by --grpc: the REST commands start faster without it
    import grpc


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # the service failed (500), or answered something this client does not understand
    USAGE = 2  # what click/typer use for usage errors; also a file that cannot be read
    AUTH = 3  # not logged in, token expired or refused (401/403), wrong password
    REJECTED = 4  # the service refused the input (400/413/415/422, an unreadable image)
    UNAVAILABLE = 5  # nothing listening, timeouts, 502/503/504, busy (429) after retries


class CliError(Exception):
    """An expected failure: `message` is shown to the user, `code` is the exit status.
    `retry_after` (seconds) when the service was busy and said when to come back."""

    def __init__(self, code: ExitCode, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


_HTTP: Final[dict[int, ExitCode]] = {
    400: ExitCode.REJECTED,
    401: ExitCode.AUTH,
    403: ExitCode.AUTH,
    408: ExitCode.UNAVAILABLE,
    413: ExitCode.REJECTED,
    415: ExitCode.REJECTED,
    422: ExitCode.REJECTED,
    429: ExitCode.UNAVAILABLE,
    502: ExitCode.UNAVAILABLE,
    503: ExitCode.UNAVAILABLE,
    504: ExitCode.UNAVAILABLE,
}

# By grpc.StatusCode name.
_GRPC: Final[dict[str, ExitCode]] = {
    "INVALID_ARGUMENT": ExitCode.REJECTED,
    "OUT_OF_RANGE": ExitCode.REJECTED,
    "FAILED_PRECONDITION": ExitCode.REJECTED,
    "UNAUTHENTICATED": ExitCode.AUTH,
    "PERMISSION_DENIED": ExitCode.AUTH,
    "RESOURCE_EXHAUSTED": ExitCode.UNAVAILABLE,
    "UNAVAILABLE": ExitCode.UNAVAILABLE,
    "DEADLINE_EXCEEDED": ExitCode.UNAVAILABLE,
}


def exit_code_for_http(status: int) -> ExitCode:
    """The exit code for an HTTP error status (FAILURE for any status not in the table)."""
    return _HTTP.get(status, ExitCode.FAILURE)


def exit_code_for_grpc(code: grpc.StatusCode) -> ExitCode:
    """The exit code for a failed gRPC call's status code (FAILURE for any code not in the table)."""
    return _GRPC.get(code.name, ExitCode.FAILURE)


# Worst first: a mesh that cannot be reached, or a login that no longer works, concerns
# every file; a failure concerns one call; a rejected file only that file.
_SEVERITY: Final = (ExitCode.USAGE, ExitCode.UNAVAILABLE, ExitCode.AUTH, ExitCode.FAILURE, ExitCode.REJECTED)


def worst(codes: Iterable[ExitCode]) -> ExitCode:
    """The exit status of several files' results: the worst of them (order: usage,
    unavailable, auth, failure, rejected), OK when every one succeeded."""
    seen = set(codes)
    return next((code for code in _SEVERITY if code in seen), ExitCode.OK)
