"""Every request body bounded before it is read, and read in bounded time.

One pure ASGI middleware in front of the routes, keyed by path:

- a size limit per route: the image uploads (`/ocr`, `/ocr/stream`) may carry
  GATEWAY_MAX_UPLOAD_BYTES plus the multipart framing, everything else (JSON and the
  /auth/token form) GATEWAY_MAX_BODY_BYTES. A `Content-Length` above it is answered 413 as
  soon as the headers are in, before the app runs; a chunked body is counted as it streams
  and refused (413) the moment it passes the limit;
- multipart bodies only where an upload is expected (415 elsewhere): a form field can then
  never be spooled to a temporary file, and /auth/token reads a small urlencoded form in
  memory;
- time: the whole body within GATEWAY_BODY_TIMEOUT_SECONDS and no pause between two chunks
  longer than GATEWAY_BODY_IDLE_TIMEOUT_SECONDS, else 408.

Refusals close the connection (`Connection: close`), so the server never parses the rest
of a body it has refused (gateway.client_limits drains it briefly: a lingering close).

Not FastAPI's `max_body_size` (Starlette's RequestBodyLimitMiddleware): it checks
`Content-Length` only when a route starts reading (after routing, dependencies and the
token check), answers in plain text rather than `{"detail": ...}`, and knows neither
multipart refusal nor read deadlines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import HTTPException, status
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class BodyRule:
    """What a route accepts as a body."""

    max_bytes: int
    multipart: bool = False


@dataclass(frozen=True)
class BodyLimits:
    """The rule of each path that differs from `default`, and the read deadlines."""

    default: BodyRule
    routes: Mapping[str, BodyRule] = field(default_factory=dict)
    # The whole body, from the first read; and the longest pause between two chunks.
    body_timeout_seconds: float = 60.0
    idle_timeout_seconds: float = 10.0

    def rule_for(self, path: str) -> BodyRule:
        return self.routes.get(path, self.default)


def too_large(max_bytes: int) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"the request body is larger than the limit of {max_bytes} bytes",
        headers=CLOSE,
    )


def too_slow() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_408_REQUEST_TIMEOUT,
        detail="the request body did not arrive in time",
        headers=CLOSE,
    )


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


async def _refuse(send: Send, status_code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Applies `BodyLimits` to every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.limits.rule_for(scope["path"])
        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        if declared is not None and declared > rule.max_bytes:
            log.info("request body refused: too large", extra={"path": scope["path"], "declared": declared})
            await _refuse(send, 413, too_large(rule.max_bytes).detail)
            return
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type.startswith("multipart/") and not rule.multipart:
            await _refuse(
                send,
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                "multipart bodies are accepted only by the upload routes; send JSON "
                "(or, to /auth/token, an application/x-www-form-urlencoded form)",
            )
            return
        if declared == 0 or (declared is None and "transfer-encoding" not in headers):
            # No body to wait for: nothing to bound.
            await self.app(scope, receive, send)
            return
        await self.app(scope, _BoundedReceive(receive, rule.max_bytes, self.limits), send)


class _BoundedReceive:
    """`receive` that counts body bytes and gives up on a body that stalls or drags on."""

    def __init__(self, receive: Receive, max_bytes: int, limits: BodyLimits) -> None:
        self._receive = receive
        self._max_bytes = max_bytes
        self._limits = limits
        self._received = 0
        self._deadline: float | None = None
        self._done = False

    async def __call__(self) -> Message:
        if self._done:
            # After the body only the disconnect comes, whenever it comes: no deadline.
            return await self._receive()
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._limits.body_timeout_seconds
        timeout = min(self._limits.idle_timeout_seconds, self._deadline - now)
        try:
            message = await asyncio.wait_for(self._receive(), timeout=max(timeout, 0))
        except TimeoutError:
            log.info("request body refused: too slow", extra={"received": self._received})
            raise too_slow() from None
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._max_bytes:
                raise too_large(self._max_bytes)
            if not message.get("more_body", False):
                self._done = True
        else:
            self._done = True
        return message
