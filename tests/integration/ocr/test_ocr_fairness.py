"""One user cannot take every OCR slot, and a call without a valid token is refused before
its image is parsed (issue: the edge under hostile load). ocr_svc in-process with the real
engine and decoder, real tokens and a real gRPC connection."""

from __future__ import annotations

import uuid

import grpc
import pytest

from harness.images import SAMPLE_PARAGRAPH, sample_multiline_png
from ocr_svc.engines.rapid import RapidOcrEngine
from ocrmesh.ocr.v1 import ocr_pb2
from ocrmesh.platform import metadata
from tests.integration.ocr.conftest import StartOcr
from tests.integration.ocr.ocr_support import GatedLastLine, completed_of

pytestmark = pytest.mark.integration


async def test_a_user_at_the_limit_gets_resource_exhausted_with_retry_after_while_others_get_through(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    engine = GatedLastLine(rapid_engine)
    ocr = await start_ocr(engine, ocr_workers=4, ocr_queue_size=8, ocr_max_calls_per_user=1)
    greedy = ocr.issuer.mint(sub=str(uuid.uuid4()), email="greedy@example.com")
    image = sample_multiline_png()

    held = ocr.recognize(image, token=greedy)
    first = await held.read()  # admitted: the call is in flight (its last line waits for the gate)
    assert first.WhichOneof("event") == "started"

    refused = ocr.recognize(image, token=greedy)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await refused.read()
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "in progress" in (error.value.details() or "")
    assert dict(error.value.trailing_metadata() or ()).get(metadata.RETRY_AFTER_SECONDS) == "2"

    engine.gate.set()
    other = completed_of(await ocr.events(image, token=ocr.issuer.mint(sub=str(uuid.uuid4()))))
    assert other.line_count == len(SAMPLE_PARAGRAPH)
    events = [first]
    while (event := await held.read()) is not grpc.aio.EOF:
        events.append(event)
    assert events[-1].WhichOneof("event") == "completed"

    # Its slot is given back when the call ends: the same user may call again.
    again = completed_of(await ocr.events(image, token=greedy))
    assert again.line_count == len(SAMPLE_PARAGRAPH)


async def test_a_call_without_a_valid_token_is_refused_before_its_image_is_parsed(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    ocr = await start_ocr(rapid_engine, ocr_max_image_bytes=11 * 1024 * 1024)
    # 10 MiB that are not a protobuf message at all: parsing them fails at once, so the
    # answer tells whether the server parsed the request before looking at the token.
    garbage = b"\xff" * (10 * 1024 * 1024)
    recognize = ocr.channel.unary_stream(
        "/ocrmesh.ocr.v1.OcrService/Recognize",
        request_serializer=lambda raw: raw,
        response_deserializer=ocr_pb2.RecognizeResponse.FromString,
    )

    async def answer(token: str) -> grpc.StatusCode:
        call = recognize(garbage, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass
        return refused.value.code()

    for token in ("not-a-jwt", ocr.issuer.mint_expired(), ocr.issuer.mint_forged()):
        assert await answer(token) == grpc.StatusCode.UNAUTHENTICATED
    # With a valid token the same bytes are parsed, and fail as what they are.
    assert await answer(ocr.token()) != grpc.StatusCode.UNAUTHENTICATED
