"""One user cannot take every OCR slot, and a call without a valid token is refused before
its image is parsed (issue: the edge under hostile load). ocr_svc in-process with the real
engine and decoder, real tokens and a real gRPC connection."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from ocr_svc.engines.rapid import RapidOcrEngine
from tests.integration.ocr.conftest import StartOcr
from tests.integration.ocr.ocr_support import GatedLastLine, completed_of
from tests.support.images import SAMPLE_PARAGRAPH, sample_multiline_png

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
    assert dict(error.value.trailing_metadata() or ()).get("retry-after-seconds") == "2"

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
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ocr = await start_ocr(rapid_engine, ocr_max_image_bytes=11 * 1024 * 1024)
    parsed = 0
    from ocrmesh.ocr.v1 import ocr_pb2

    real_from_string = ocr_pb2.RecognizeRequest.FromString

    def counting(data: bytes) -> ocr_pb2.RecognizeRequest:
        nonlocal parsed
        parsed += 1
        return real_from_string(data)

    # The servicer's deserializer is looked up per call from the registered handler; count
    # what it parses by wrapping the class method the generated code registered.
    monkeypatch.setattr(ocr_pb2.RecognizeRequest, "FromString", staticmethod(counting))
    big = b"\x89PNG" + b"\0" * (10 * 1024 * 1024)
    for token in ("not-a-jwt", ocr.issuer.mint_expired(), ocr.issuer.mint_forged()):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ocr.events(big, token=token)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await asyncio.sleep(0)
    assert parsed == 0
