"""The kernel's server factory, hosting a tiny in-test servicer on port 0, over real channels."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_database import DescriptorDatabase
from google.protobuf.descriptor_pool import DescriptorPool
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.platform.grpc_server import HostedService, MeshServer, create_server
from ocrmesh.platform.logs import JsonFormatter
from ocrmesh.reflection.v1 import reflection_pb2, reflection_pb2_grpc

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
log = logging.getLogger("tests.kernel.servicer")


class TinyServicer(auth_pb2_grpc.AuthServiceServicer):
    """Just enough behaviour to exercise the kernel."""

    def __init__(self) -> None:
        self.slow_call_started = asyncio.Event()

    async def GetPublicKeys(
        self, request: auth_pb2.GetPublicKeysRequest, context: aio.ServicerContext
    ) -> auth_pb2.GetPublicKeysResponse:
        log.info("keys asked for")
        return auth_pb2.GetPublicKeysResponse(issuer="tiny")

    async def Login(
        self, request: auth_pb2.LoginRequest, context: aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        raise RuntimeError("database password is hunter2")

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: aio.ServicerContext
    ) -> auth_pb2.GetCurrentUserResponse:
        self.slow_call_started.set()
        await asyncio.sleep(1.0)
        return auth_pb2.GetCurrentUserResponse(user=auth_pb2.User(id="slow"))


@pytest.fixture
async def tiny() -> AsyncIterator[tuple[MeshServer, int, TinyServicer]]:
    servicer = TinyServicer()
    mesh, port = create_server(
        [HostedService.of(servicer, auth_pb2_grpc.add_AuthServiceServicer_to_server, AUTH_SERVICE)],
        host="127.0.0.1",
    )
    await mesh.start()
    yield mesh, port, servicer
    await mesh.stop(0)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Captures every log line as the services write them (JSON)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(previous)


async def health_status(port: int, service: str = "") -> int:
    async with create_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
        return int(reply.status)


async def test_health_reports_serving_for_server_and_each_hosted_service(tiny) -> None:
    _, port, _ = tiny
    assert await health_status(port) == health_pb2.HealthCheckResponse.SERVING
    assert await health_status(port, AUTH_SERVICE) == health_pb2.HealthCheckResponse.SERVING


async def test_health_turns_not_serving_when_shutdown_begins(tiny) -> None:
    mesh, port, servicer = tiny
    async with create_channel(f"127.0.0.1:{port}") as channel:
        slow = auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(auth_pb2.GetCurrentUserRequest())
        await servicer.slow_call_started.wait()
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=AUTH_SERVICE))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(mesh.stop(5))
        second = await asyncio.wait_for(watch.read(), 3)
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await slow
        await stopping


async def test_reflection_lists_hosted_services_and_describes_a_method(tiny) -> None:
    _, port, _ = tiny

    def as_grpcurl_would() -> tuple[list[str], str, str]:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            services = list(database.get_services())
            pool = DescriptorPool(database)
            method = pool.FindServiceByName(AUTH_SERVICE).methods_by_name["Login"]
            return services, method.input_type.full_name, method.output_type.full_name

    services, input_type, output_type = await asyncio.to_thread(as_grpcurl_would)
    assert AUTH_SERVICE in services
    assert "grpc.health.v1.Health" in services
    assert "grpc.reflection.v1alpha.ServerReflection" in services
    assert "grpc.reflection.v1.ServerReflection" in services
    assert (input_type, output_type) == ("ocrmesh.auth.v1.LoginRequest", "ocrmesh.auth.v1.LoginResponse")


async def reflect_v1(
    port: int, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    """The answers of one grpc.reflection.v1 session, as grpcurl >= 1.9 holds it."""
    async with create_channel(f"127.0.0.1:{port}") as channel:
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter(requests), timeout=5
        )
        return [response async for response in call]


async def test_reflection_v1_lists_services_and_describes_a_method_and_itself(tiny) -> None:
    _, port, _ = tiny
    listed, auth_file, v1_file, missing = await reflect_v1(
        port,
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=AUTH_SERVICE),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Service"),
    )

    services = {service.name for service in listed.list_services_response.service}
    assert {AUTH_SERVICE, "grpc.health.v1.Health"} <= services
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= services
    # The answers hold each file with its dependencies, in no particular order.
    files = DescriptorDatabase()
    for answer in (auth_file, v1_file):
        for serialized in answer.file_descriptor_response.file_descriptor_proto:
            files.Add(descriptor_pb2.FileDescriptorProto.FromString(serialized))
    pool = DescriptorPool(files)
    login = pool.FindServiceByName(AUTH_SERVICE).methods_by_name["Login"]
    assert (login.input_type.full_name, login.output_type.full_name) == (
        "ocrmesh.auth.v1.LoginRequest",
        "ocrmesh.auth.v1.LoginResponse",
    )
    info = pool.FindServiceByName("grpc.reflection.v1.ServerReflection").methods_by_name[
        "ServerReflectionInfo"
    ]
    assert info.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_request_id_from_metadata_reaches_every_log_line_of_the_call(tiny, json_log) -> None:
    _, port, _ = tiny
    async with create_channel(f"127.0.0.1:{port}") as channel:
        await auth_pb2_grpc.AuthServiceStub(channel).GetPublicKeys(
            auth_pb2.GetPublicKeysRequest(), metadata=(("x-request-id", "req-abc-123"),)
        )
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    handler_line = next(line for line in lines if line["msg"] == "keys asked for")
    access_line = next(line for line in lines if line.get("method", "").endswith("/GetPublicKeys"))
    assert handler_line["request_id"] == "req-abc-123"
    assert access_line["request_id"] == "req-abc-123"
    assert access_line["code"] == "OK"
    assert access_line["duration_ms"] >= 0


async def test_a_new_request_id_is_made_when_the_caller_sends_none_or_garbage(tiny, json_log) -> None:
    _, port, _ = tiny
    async with create_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())
        await stub.GetPublicKeys(
            auth_pb2.GetPublicKeysRequest(), metadata=(("x-request-id", "bad id with spaces " + "x" * 200),)
        )
    ids = [json.loads(line).get("request_id") for line in json_log.getvalue().splitlines()]
    handler_ids = [i for i in ids if i]
    assert len(handler_ids) >= 2
    assert all(len(i) == 32 for i in handler_ids)


async def test_an_exception_in_a_handler_arrives_as_internal_without_its_text(tiny, json_log) -> None:
    _, port, _ = tiny
    async with create_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await auth_pb2_grpc.AuthServiceStub(channel).Login(
                auth_pb2.LoginRequest(email="a@b.c", password="x"), metadata=(("x-request-id", "req-boom"),)
            )
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in (caught.value.details() or "")
    assert "req-boom" in (caught.value.details() or "")
    # The traceback is in our log, for the operator, tagged with the request id.
    error_line = next(json.loads(x) for x in json_log.getvalue().splitlines() if "unhandled" in x)
    assert error_line["request_id"] == "req-boom"
    assert "hunter2" in error_line["exc"]


async def test_a_slow_call_in_flight_completes_during_graceful_stop(tiny) -> None:
    mesh, port, servicer = tiny
    async with create_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        slow = asyncio.ensure_future(stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest()))
        await servicer.slow_call_started.wait()
        await mesh.stop(grace=5)
        reply = await slow
    assert reply.user.id == "slow"


async def test_calls_after_stop_are_refused(tiny) -> None:
    mesh, port, _ = tiny
    await mesh.stop(0)
    async with create_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await auth_pb2_grpc.AuthServiceStub(channel).GetPublicKeys(
                auth_pb2.GetPublicKeysRequest(), timeout=1
            )
    assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def test_client_channel_puts_a_default_deadline_on_calls(tiny) -> None:
    _, port, _ = tiny
    async with create_channel(f"127.0.0.1:{port}", unary_timeout=0.2) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(auth_pb2.GetCurrentUserRequest())
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
