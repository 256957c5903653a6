"""Client channels over several replicas: round robin, a replica that goes and comes back,
retries of read-only calls only, and connection ageing on the server. Replicas are real
grpc.aio servers on 127.0.0.2-4 (Linux answers on all of 127/8), the client a real channel."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc import aio

from gateway.settings import GatewaySettings
from ocr_svc.settings import OcrSettings
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.platform.grpc_server import HostedService, MeshServer, create_server

SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


@dataclass
class Replica:
    """One replica: answers GetPublicKeys with its host name; can be told to fail."""

    host: str
    calls: Counter[str] = field(default_factory=Counter)
    unavailable_first: set[str] = field(default_factory=set)
    mesh: MeshServer | None = None
    port: int = 0

    def servicer(self) -> auth_pb2_grpc.AuthServiceServicer:
        replica = self

        class Servicer(auth_pb2_grpc.AuthServiceServicer):
            async def _answer(self, method: str, context: aio.ServicerContext) -> None:
                replica.calls[method] += 1
                if method in replica.unavailable_first and replica.calls[method] == 1:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")

            async def GetPublicKeys(
                self, request: auth_pb2.GetPublicKeysRequest, context: aio.ServicerContext
            ) -> auth_pb2.GetPublicKeysResponse:
                await self._answer("GetPublicKeys", context)
                return auth_pb2.GetPublicKeysResponse(issuer=replica.host)

            async def Register(
                self, request: auth_pb2.RegisterRequest, context: aio.ServicerContext
            ) -> auth_pb2.RegisterResponse:
                await self._answer("Register", context)
                return auth_pb2.RegisterResponse()

            async def GetCurrentUser(
                self, request: auth_pb2.GetCurrentUserRequest, context: aio.ServicerContext
            ) -> auth_pb2.GetCurrentUserResponse:
                await self._answer("GetCurrentUser", context)
                await asyncio.sleep(1.5)
                return auth_pb2.GetCurrentUserResponse(user=auth_pb2.User(id=replica.host))

        return Servicer()

    async def start(self, *, max_age_s: float | None = None) -> None:
        self.mesh, self.port = create_server(
            [HostedService.of(self.servicer(), auth_pb2_grpc.add_AuthServiceServicer_to_server, SERVICE)],
            host=self.host,
            port=self.port,
            max_connection_age_s=max_age_s,
            max_connection_age_grace_s=10 if max_age_s else None,
        )
        await self.mesh.start()

    async def stop(self) -> None:
        assert self.mesh is not None
        await self.mesh.stop(0)
        self.mesh = None


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    started = [Replica(host) for host in HOSTS]
    for replica in started:
        await replica.start()
    yield started
    for replica in started:
        if replica.mesh is not None:
            await replica.stop()


def ipv4_target(replicas: list[Replica]) -> str:
    return "ipv4:" + ",".join(f"{r.host}:{r.port}" for r in replicas)


async def issuers(stub: auth_pb2_grpc.AuthServiceStub, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        seen[(await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=5)).issuer] += 1
    return seen


async def test_calls_are_spread_round_robin_over_every_replica_of_the_target(replicas) -> None:
    async with create_channel(ipv4_target(replicas)) as channel:
        await channel.channel_ready()
        await asyncio.sleep(0.3)  # every subchannel connected, not just the first
        seen = await issuers(auth_pb2_grpc.AuthServiceStub(channel), 30)
    assert set(seen) == set(HOSTS)
    assert min(seen.values()) >= 8, seen


async def test_a_replica_that_goes_away_is_skipped_and_used_again_when_it_is_back(replicas) -> None:
    gone = replicas[1]
    async with create_channel(ipv4_target(replicas)) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await issuers(stub, 6)
        await gone.stop()
        after = await issuers(stub, 30)  # none fails: the dead address is skipped (or retried)
        assert gone.host not in after
        assert sum(after.values()) == 30
        await gone.start()
        deadline = time.monotonic() + 10
        while gone.calls["GetPublicKeys"] == 0 or (await issuers(stub, 3))[gone.host] == 0:
            assert time.monotonic() < deadline, "the restarted replica took no call within 10 s"
            await asyncio.sleep(0.2)


async def test_a_read_only_call_is_retried_on_unavailable_but_a_write_is_not(replicas) -> None:
    only = replicas[0]
    only.unavailable_first = {"GetPublicKeys", "Register"}
    async with create_channel(f"{only.host}:{only.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        reply = await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=5)
        assert reply.issuer == only.host
        assert only.calls["GetPublicKeys"] == 2
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.Register(auth_pb2.RegisterRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert only.calls["Register"] == 1


async def test_an_aged_connection_is_replaced_without_cutting_a_call_in_flight() -> None:
    replica = Replica("127.0.0.2")
    await replica.start(max_age_s=0.5)
    try:
        async with create_channel(f"dns:///{replica.host}:{replica.port}") as ch:
            stub = auth_pb2_grpc.AuthServiceStub(ch)
            # 1.5 s call on a connection told to go away after 0.5 s: the grace lets it end.
            slow = await stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), timeout=10)
            assert slow.user.id == replica.host
            for _ in range(5):  # and calls after the GOAWAY go over a new connection
                await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest(), timeout=5)
                await asyncio.sleep(0.2)
    finally:
        await replica.stop()


@pytest.mark.parametrize(
    "target",
    [
        "auth-svc:50051",
        "dns:///auth-svc.ocrmesh.svc:50051",
        "ipv4:10.0.0.1:50051,10.0.0.2:50051",
        "[::1]:50051",
    ],
)
def test_service_addresses_accept_grpc_target_uris(target: str) -> None:
    assert GatewaySettings(auth_addr=target, ocr_addr=target).ocr_addr == target


@pytest.mark.parametrize(
    "target", ["", "auth-svc", "auth svc:50051", "http://auth:50051", "auth:70000", "dns:"]
)
def test_a_malformed_service_address_is_refused_at_start(target: str) -> None:
    with pytest.raises(ValueError, match=r"gRPC target|needs an address"):
        GatewaySettings(auth_addr=target)


def test_servers_age_connections_by_default_with_a_grace_above_the_ocr_deadline() -> None:
    assert OcrSettings().grpc_max_connection_age_grace_seconds > GatewaySettings().ocr_timeout_seconds
