"""Server reflection in both protocol versions: `grpc.reflection.v1` (what grpcurl >= 1.9,
grpcui, Postman and Kreya ask for first) and `grpc.reflection.v1alpha` (older tools).

grpcio-reflection implements v1alpha only. The v1 messages (protos/ocrmesh/reflection/v1)
have the same fields under the same numbers, so v1 is served by the library's own
servicer: each request is re-read as its v1alpha twin and each answer as its v1 twin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from grpc import aio
from grpc_reflection.v1alpha import reflection as reflection_v1alpha
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

from ocrmesh.reflection.v1 import reflection_pb2, reflection_pb2_grpc

SERVICE_NAME_V1 = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
SERVICE_NAME_V1ALPHA: str = reflection_v1alpha.SERVICE_NAME


class ReflectionV1Servicer(reflection_pb2_grpc.ServerReflectionServicer):
    """`grpc.reflection.v1.ServerReflection` over grpcio-reflection's v1alpha servicer."""

    def __init__(self, service_names: Iterable[str]) -> None:
        self._v1alpha = reflection_v1alpha.aio.ReflectionServicer(service_names)

    async def ServerReflectionInfo(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[reflection_pb2.ServerReflectionRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        async def as_v1alpha() -> AsyncIterator[v1alpha_pb2.ServerReflectionRequest]:
            async for request in request_iterator:
                yield v1alpha_pb2.ServerReflectionRequest.FromString(request.SerializeToString())

        # An async generator, though grpcio-reflection annotates it as a coroutine.
        responses = cast(
            AsyncIterator[v1alpha_pb2.ServerReflectionResponse],
            self._v1alpha.ServerReflectionInfo(as_v1alpha(), context),
        )
        async for response in responses:
            yield reflection_pb2.ServerReflectionResponse.FromString(response.SerializeToString())


def enable_server_reflection(service_names: Iterable[str], server: aio.Server) -> None:
    """Serve reflection v1 and v1alpha on `server`, listing `service_names` plus both
    reflection services themselves."""
    names = [*service_names, SERVICE_NAME_V1, SERVICE_NAME_V1ALPHA]
    reflection_v1alpha.enable_server_reflection(names, server)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(ReflectionV1Servicer(names), server)
