"""Server interceptor: request id, access log, and no exception text on the wire."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import grpc
from grpc import aio

from ocrmesh.platform.metrics import rpc_metrics
from ocrmesh.platform.request_context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    reset_request_id,
    set_request_id,
)
from ocrmesh.platform.telemetry import tag_request_id

log = logging.getLogger("ocrmesh.access")

# Health checks are probed every few seconds; logging each one drowns the useful lines.
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# Strings: these classes are generic only in the type stubs, not at run time.
Context: TypeAlias = "aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item in details.invocation_metadata or ():
        if item[0] == key:
            value = item[1]
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None


class _Call:
    """What the interceptor tracks for one call: its request id, timing and final code."""

    def __init__(self, method: str, request_id: str) -> None:
        self.method = method
        self.request_id = request_id
        self.quiet = method.startswith(_QUIET_PREFIXES)
        self.metrics = rpc_metrics(method)

    @contextmanager
    def bound(self) -> Iterator[None]:
        token = set_request_id(self.request_id)
        tag_request_id(self.request_id)  # on the call's trace span, when tracing is on
        try:
            yield
        finally:
            reset_request_id(token)

    async def internal_error(self, context: Context) -> None:
        # The traceback goes to our log; the caller gets only the request id to quote.
        log.exception("unhandled exception in %s", self.method, extra={"method": self.method})
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {self.request_id})")

    def access(self, context: Context, started: float, failed: bool, peer: str) -> None:
        # `peer` is read when the call starts: after a caller cancels, grpc.aio may have
        # freed the call, and `context.peer()` then crashes the process (SIGSEGV, grpc 1.85).
        code = context.code()
        if not isinstance(code, grpc.StatusCode):
            code = grpc.StatusCode.INTERNAL if failed else grpc.StatusCode.OK
        elapsed = time.perf_counter() - started
        self.metrics.handled(code, elapsed)
        if self.quiet and code == grpc.StatusCode.OK:
            return
        log.info(
            "%s %s",
            self.method,
            code.name,
            extra={
                "method": self.method,
                "code": code.name,
                "duration_ms": round(elapsed * 1000, 2),
                "peer": peer,
            },
        )


class ServerContextInterceptor(aio.ServerInterceptor):
    """Binds the request id (from `x-request-id` or new) for the call, logs one access line
    per call with its status code and duration, and turns an unexpected exception into
    INTERNAL with a generic message that names the request id."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        call = _Call(
            handler_call_details.method,
            accept_request_id(_metadata_value(handler_call_details, REQUEST_ID_HEADER)),
        )
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(call, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            # A streaming handler is an async generator, or a coroutine that writes with
            # context.write() (the library's Health.Watch); each is wrapped as itself.
            inner = handler.unary_stream
            wrapped = (
                _wrap_stream(call, inner) if inspect.isasyncgenfunction(inner) else _wrap_unary(call, inner)
            )
            return grpc.unary_stream_rpc_method_handler(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # Client-streaming and bidi calls (reflection) pass through untouched.
        return handler


def _wrap_unary(call: _Call, inner: Any) -> Callable[[Any, Context], Awaitable[Any]]:
    async def unary(request: Any, context: Context) -> Any:
        with call.bound():
            started, failed, peer = time.perf_counter(), False, context.peer()
            try:
                return await inner(request, context)
            except aio.AbortError:
                raise
            except Exception:
                failed = True
                await call.internal_error(context)
            finally:
                call.access(context, started, failed, peer)

    return unary


def _wrap_stream(call: _Call, inner: Any) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        with call.bound():
            started, failed, peer = time.perf_counter(), False, context.peer()
            call.metrics.streams.inc()
            try:
                async for response in inner(request, context):
                    yield response
            except aio.AbortError:
                raise
            except Exception:
                failed = True
                await call.internal_error(context)
            finally:
                call.metrics.streams.dec()
                call.access(context, started, failed, peer)

    return stream
