"""Callers that hang up on an OCR stream: ocr_svc keeps serving whenever they do it.

A caller that cancels Recognize right after `completed` (it has all it wanted) used to
crash ocr_svc with SIGSEGV: the access log asked grpc.aio for the peer of a call it had
already freed. Only real processes show it (the timing of the real service)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness.images import sample_multiline_png
from harness.mesh import Mesh
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata, create_channel
from tests.e2e.conftest import SignedUpUser

pytestmark = pytest.mark.e2e


async def recognize_then_cancel(address: str, token: str, image: bytes, after: str) -> list[str]:
    """Recognize `image` and cancel the call once an event of kind `after` arrived."""
    seen: list[str] = []
    async with create_channel(address) as channel:
        call = ocr_pb2_grpc.OcrServiceStub(channel).Recognize(
            ocr_pb2.RecognizeRequest(image=image, filename="page.png"), metadata=bearer_metadata(token)
        )
        async for response in call:
            seen.append(str(response.WhichOneof("event")))
            if seen[-1] == after:
                call.cancel()
                break
    return seen


@pytest.mark.parametrize("after", ["completed", "line"])
def test_ocr_svc_survives_callers_that_cancel_a_stream(
    mesh: Mesh, user: SignedUpUser, client: httpx.Client, after: str
) -> None:
    image = sample_multiline_png()
    for _ in range(4):
        seen = asyncio.run(recognize_then_cancel(mesh.ocr_addr, user.token, image, after))
        assert seen[-1] == after
    asyncio.run(asyncio.sleep(1))  # a crash would have happened by now
    assert mesh.processes["ocr"].poll() is None, mesh.log_of("ocr")[-3000:]
    files = {"file": ("page.png", image, "image/png")}
    assert client.post("/ocr", headers=user.auth, files=files).status_code == 200
