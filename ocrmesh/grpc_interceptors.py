"""Server interceptor: request id, access log, and no exception text on the wire."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from ocrmesh.request_context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    reset_request_id,
    set_request_id,
)

log = logging.getLogger("ocrmesh.access")

# Health checks are probed every few seconds; logging each one drowns the useful lines.
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item in details.invocation_metadata or ():
        if item[0] == key:
            value = item[1]
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None


def _final_code(context: aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK


async def _abort_internal(
    context: aio.ServicerContext[Any, Any], method: str, request_id: str
) -> None:
    # The traceback goes to our log; the caller gets only the request id to quote.
    log.exception("unhandled exception in %s", method, extra={"method": method})
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})")


class ServerContextInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Binds the request id (from `x-request-id` or new) for the call, logs one access line
    per call with its status code and duration, and turns an unexpected exception into
    INTERNAL with a generic message that names the request id."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        request_id = accept_request_id(_metadata_value(handler_call_details, REQUEST_ID_HEADER))
        quiet = method.startswith(_QUIET_PREFIXES)

        def access(context: aio.ServicerContext[Any, Any], started: float, code: grpc.StatusCode) -> None:
            if quiet and code == grpc.StatusCode.OK:
                return
            log.info(
                "%s %s",
                method,
                code.name,
                extra={
                    "method": method,
                    "code": code.name,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "peer": context.peer(),
                },
            )

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
                token = set_request_id(request_id)
                started = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    return await inner_uu(request, context)
                except aio.AbortError:
                    code = _final_code(context)
                    raise
                except Exception:
                    code = grpc.StatusCode.INTERNAL
                    await _abort_internal(context, method, request_id)
                finally:
                    access(context, started, code if code != grpc.StatusCode.OK else _final_code(context))
                    reset_request_id(token)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                token = set_request_id(request_id)
                started = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    async for response in inner_us(request, context):
                        yield response
                except aio.AbortError:
                    code = _final_code(context)
                    raise
                except Exception:
                    code = grpc.StatusCode.INTERNAL
                    await _abort_internal(context, method, request_id)
                finally:
                    access(context, started, code if code != grpc.StatusCode.OK else _final_code(context))
                    reset_request_id(token)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        # Client-streaming and bidi calls (reflection) pass through untouched.
        return handler
