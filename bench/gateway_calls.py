"""The calls `bench.bench_gateway` compares, each with its own connections (made once): GET
/auth/me through the gateway, through the original design and as the gRPC call it makes, and
one OCR of an image through `/ocr`, `/ocr/stream`, `OcrService.Recognize` and the original
design's `/ocr`. Also the user they all act as."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from google.protobuf.message import Message

from bench.gateway_original import Baseline
from harness.mesh import Mesh
from harness.users import random_email, sign_up
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata, create_channel

PASSWORD = "correct horse battery staple"
HTTP_TIMEOUT_S = 120.0


def sign_up_bench_user(mesh: Mesh) -> str:
    """Register through the gateway, read the code from the mail file, verify, log in:
    the access token."""
    with httpx.Client(base_url=mesh.gateway_url, timeout=30) as client:
        user = sign_up(
            client, mesh.mail_dir, name="Bench User", email=random_email("bench"), password=PASSWORD
        )
    return user.token


@dataclass(frozen=True)
class OcrTiming:
    total: float
    first_line: float
    text: str


def _upload(png: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("bench.png", png, "image/png")}


class Targets:
    """The calls being compared, each with its own connections (made once)."""

    def __init__(self, mesh: Mesh, baseline: Baseline, token: str) -> None:
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}
        self.metadata = bearer_metadata(token)
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout, so that a
        # phase never reuses one the server is closing at that moment (httpx's default
        # expiry is 5 s as well: a race that shows as "Server disconnected").
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0)
        self.gateway = httpx.AsyncClient(base_url=mesh.gateway_url, timeout=HTTP_TIMEOUT_S, limits=limits)
        self.original = httpx.AsyncClient(
            base_url=baseline.gateway_url, timeout=HTTP_TIMEOUT_S, limits=limits
        )
        self.auth_channel = create_channel(mesh.auth_addr, unary_timeout=HTTP_TIMEOUT_S)
        self.ocr_channel = create_channel(mesh.ocr_addr, stream_timeout=HTTP_TIMEOUT_S)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.auth_channel)
        self.ocr = ocr_pb2_grpc.OcrServiceStub(self.ocr_channel)

    async def aclose(self) -> None:
        await self.gateway.aclose()
        await self.original.aclose()
        await self.auth_channel.close()
        await self.ocr_channel.close()

    # -- GET /auth/me and its gRPC call
    @staticmethod
    def _ok(response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise RuntimeError(f"{response.request.url.path}: {response.status_code} {response.text[:200]}")
        return response.json()

    async def gateway_me(self) -> object:
        return self._ok(await self.gateway.get("/auth/me", headers=self.headers))

    async def original_me(self) -> object:
        return self._ok(await self.original.get("/auth/me", headers=self.headers))

    async def direct_me(self) -> Message:
        return await self.auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=self.metadata)

    # -- OCR
    async def direct_recognize(self, png: bytes) -> OcrTiming:
        t0 = time.perf_counter()
        first_line = None
        text = ""
        request = ocr_pb2.RecognizeRequest(image=png, filename="bench.png")
        async for event in self.ocr.Recognize(request, metadata=self.metadata):
            kind = event.WhichOneof("event")
            if kind == "line" and first_line is None:
                first_line = time.perf_counter() - t0
            elif kind == "completed":
                text = event.completed.full_text
        total = time.perf_counter() - t0
        return OcrTiming(total, total if first_line is None else first_line, text)

    async def gateway_ocr(self, png: bytes) -> OcrTiming:
        t0 = time.perf_counter()
        body = self._ok(await self.gateway.post("/ocr", files=_upload(png), headers=self.headers))
        total = time.perf_counter() - t0
        return OcrTiming(total, total, str(body["ocr_text"]))

    async def gateway_ocr_stream(self, png: bytes) -> OcrTiming:
        t0 = time.perf_counter()
        first_line = None
        text = ""
        async with self.gateway.stream(
            "POST", "/ocr/stream", files=_upload(png), headers=self.headers
        ) as response:
            if response.status_code != 200:
                await response.aread()
                self._ok(response)
            async for line in response.aiter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if event["type"] == "line" and first_line is None:
                    first_line = time.perf_counter() - t0
                elif event["type"] == "completed":
                    text = event["full_text"]
                elif event["type"] == "error":
                    raise RuntimeError(f"/ocr/stream error event: {event}")
        total = time.perf_counter() - t0
        return OcrTiming(total, total if first_line is None else first_line, text)

    async def original_ocr(self, png: bytes) -> OcrTiming:
        t0 = time.perf_counter()
        body = self._ok(await self.original.post("/ocr", files=_upload(png), headers=self.headers))
        total = time.perf_counter() - t0
        if "ocr_text" not in body:
            raise RuntimeError(f"original /ocr: {body}")
        # No streaming in the original design: the first line comes with the whole result.
        return OcrTiming(total, total, str(body["ocr_text"]))
