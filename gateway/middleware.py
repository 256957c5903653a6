"""Request id, access log and the last-resort 500, as one pure ASGI middleware.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched and the
request id contextvar bound here is the one the route and the gRPC client interceptor see.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import internal_error_detail
from gateway.metrics import observe_request
from ocrmesh.platform.request_context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    reset_request_id,
    set_request_id,
)
from ocrmesh.platform.telemetry import tag_request_id

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

RESPONSE_REQUEST_ID_HEADER = "X-Request-ID"
# Probes and scrapes hit these every few seconds; a line per healthy one drowns the useful ones.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestContextMiddleware:
    """Accepts the caller's `X-Request-ID` (or makes one), binds it for the request, returns
    it as a response header, logs one access line per request, and answers an unexpected
    exception with a 500 that names only the request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        context_token = set_request_id(request_id)
        # The trace's server span (tracing on) starts before this id is known.
        tag_request_id(request_id)
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                MutableHeaders(scope=message)[RESPONSE_REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            log.exception(
                "unhandled exception", extra={"method": scope.get("method"), "path": scope.get("path")}
            )
            if response_started:
                # Headers are out: closing the connection is all that is left.
                raise
            status_code = 500
            await _send_internal_error(send, request_id)
        finally:
            elapsed = time.perf_counter() - started
            observe_request(scope, status_code, elapsed)
            path = scope.get("path", "")
            if not (path in _QUIET_PATHS and status_code < 400):
                client = scope.get("client")
                access_log.info(
                    "%s %s %s",
                    scope.get("method"),
                    path,
                    status_code,
                    extra={
                        "method": scope.get("method"),
                        "path": path,
                        "status": status_code,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": f"{client[0]}:{client[1]}" if client else None,
                    },
                )
            reset_request_id(context_token)


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = json.dumps({"detail": internal_error_detail()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (RESPONSE_REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
