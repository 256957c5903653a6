"""Refusing calls without a valid bearer token before their request is parsed.

A servicer learns who calls when its handler runs, by which time gRPC has received the
request and protobuf has parsed it: an 11 MiB image costs its copy and its parse before
the token is even looked at. `BearerTokenInterceptor` checks the `authorization` metadata
(headers arrive before the message) for the methods it guards; a call that fails gets a
handler that does not parse its request and ends it UNAUTHENTICATED (UNAVAILABLE when the
keys cannot be fetched). What it still costs is gRPC's own receiving of the bytes, bounded
by the server's message size limit. Calls that pass go to the servicer, whose own check of
the same token is then a hit in the verifier's cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc import aio

from ocrmesh.rules.tokens.errors import InvalidToken, KeysUnavailable
from ocrmesh.rules.tokens.verify import TokenVerifier, bearer_token_from_metadata


def _ignore_request(data: bytes) -> None:
    return None


def _refusal(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    async def refuse(request: None, context: aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, message)

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            refuse, request_deserializer=_ignore_request, response_serializer=handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        refuse, request_deserializer=_ignore_request, response_serializer=handler.response_serializer
    )


class BearerTokenInterceptor(aio.ServerInterceptor):
    """For the full method names in `methods` ("/pkg.Service/Method"), unary requests only:
    no valid bearer token in the call's metadata, no parsing of its request."""

    def __init__(self, verifier: TokenVerifier, methods: Iterable[str]) -> None:
        self._verifier = verifier
        self._methods = frozenset(methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method not in self._methods:
            return handler
        if handler.unary_unary is None and handler.unary_stream is None:
            return handler  # a streaming request: parsed piece by piece, checked by the servicer
        try:
            token = bearer_token_from_metadata(handler_call_details.invocation_metadata or ())
            await self._verifier.verify(token)
        except InvalidToken as exc:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, exc.reason)
        except KeysUnavailable:
            return _refusal(handler, grpc.StatusCode.UNAVAILABLE, "cannot verify tokens right now, retry")
        return handler


__all__ = ["BearerTokenInterceptor"]
