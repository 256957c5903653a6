"""Helpers for auth_svc integration tests: a mailbox on the real RabbitMQ queue, a running
in-process auth_svc, and small polling utilities."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pika
import pika.exceptions

from auth_svc.app import AuthServer, create_app
from auth_svc.settings import AuthSettings
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.rules.email_events import EmailTopology

CODE_IN_MAIL = re.compile(r"verification code is (\d{6})")


@dataclass
class Mailbox:
    """Everything published to the run's email queue, read with basic_get over a real
    connection and kept, so each test can pick out the mail for its own addresses."""

    url: str
    topology: EmailTopology
    received: list[email_pb2.EmailRequested] = field(default_factory=list)

    def drain(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            while True:
                method, _props, body = channel.basic_get(self.topology.queue, auto_ack=True)
                if method is None or body is None:
                    return
                self.received.append(email_pb2.EmailRequested.FromString(body))
        finally:
            connection.close()

    def mails_to(self, address: str) -> list[email_pb2.EmailRequested]:
        return [m for m in self.received if m.to.lower() == address.lower()]

    async def wait_for(
        self, address: str, count: int = 1, timeout: float = 20.0
    ) -> list[email_pb2.EmailRequested]:
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.to_thread(self.drain)
            mails = self.mails_to(address)
            if len(mails) >= count:
                return mails
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(mails)} of {count} mails to {address} arrived within {timeout}s")
            await asyncio.sleep(0.2)

    async def code_for(self, address: str, nth: int = 1) -> str:
        """The code in the nth mail (1-based) sent to `address`."""
        mails = await self.wait_for(address, count=nth)
        match = CODE_IN_MAIL.search(mails[nth - 1].body)
        assert match is not None, mails[nth - 1].body
        return match.group(1)

    def delete_queues(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            self.topology.delete(connection.channel())
        finally:
            connection.close()


@dataclass
class RunningAuth:
    server: AuthServer
    port: int
    channel: grpc.aio.Channel
    stub: auth_pb2_grpc.AuthServiceAsyncStub

    @classmethod
    async def start(cls, settings: AuthSettings, **app_options: Any) -> RunningAuth:
        server, port = create_app(settings, database_wait_seconds=0, **app_options)
        await server.start()
        channel = create_channel(f"127.0.0.1:{port}", unary_timeout=30.0)
        return cls(server, port, channel, auth_pb2_grpc.AuthServiceStub(channel))

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop(0)

    async def register(
        self, email: str, password: str = "correct horse battery", name: str = "Ada"
    ) -> auth_pb2.User:
        reply = await self.stub.Register(auth_pb2.RegisterRequest(name=name, email=email, password=password))
        return reply.user

    async def register_verified(
        self, mailbox: Mailbox, email: str, password: str = "correct horse battery", name: str = "Ada"
    ) -> auth_pb2.User:
        await self.register(email, password, name)
        code = await mailbox.code_for(email)
        reply = await self.stub.VerifyOtp(auth_pb2.VerifyOtpRequest(email=email, otp=code))
        return reply.user

    async def login(self, email: str, password: str = "correct horse battery") -> str:
        reply = await self.stub.Login(auth_pb2.LoginRequest(email=email, password=password))
        return reply.access_token


async def rpc_error(call: Callable[[], object]) -> grpc.aio.AioRpcError:
    """The AioRpcError the awaited call raises (fails the test when it succeeds)."""
    try:
        await call()  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the call succeeded")


async def eventually(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)
