"""ocr_svc over real gRPC with the real default engine (RapidOCR): readiness, accuracy on
rendered text, streaming, bad inputs, authentication, overload, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2
from PIL import Image, ImageDraw

from harness.images import (
    SAMPLE_PARAGRAPH,
    available_fonts,
    character_error_rate,
    encode,
    load_font,
    render_text_image,
    render_text_pil,
    sample_multiline_png,
)
from ocr_svc.engines.base import EngineUnavailable, RecognizedLine, RgbImage, TextRegion
from ocr_svc.engines.rapid import RapidOcrEngine
from tests.integration.ocr.conftest import StartOcr
from tests.integration.ocr.ocr_support import GatedLastLine, completed_of, lines_of
from tests.unit.ocr.scripted_engine import ScriptedEngine

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class SlowToLoad(ScriptedEngine):
    def __init__(self) -> None:
        super().__init__(["ready"])
        self.may_load = threading.Event()

    def load(self) -> None:
        if not self.may_load.wait(30):
            raise TimeoutError("never allowed to load")
        super().load()


async def test_health_says_serving_only_once_the_engine_is_warm(start_ocr: StartOcr) -> None:
    engine = SlowToLoad()
    ocr = await start_ocr(engine, background=True)
    # The server answers health checks while the engine loads (it cannot finish loading
    # before the gate opens, so whatever it answers now is the loading state).
    status = None
    for _ in range(100):
        with contextlib.suppress(grpc.aio.AioRpcError):
            status = await ocr.health()
            break
        await asyncio.sleep(0.1)
    assert status == NOT_SERVING
    assert await ocr.health("ocrmesh.ocr.v1.OcrService") == NOT_SERVING
    engine.may_load.set()
    assert ocr.starting is not None
    await asyncio.wait_for(ocr.starting, 30)
    assert await ocr.health() == SERVING
    assert await ocr.health("ocrmesh.ocr.v1.OcrService") == SERVING


# Fonts x sizes x page/ink colours; every case reads the same two lines.
ACCURACY_CASES = [
    ("pillow-default", 18, "white", "black"),
    ("pillow-default", 40, (250, 245, 225), (20, 20, 80)),
    ("dejavu-sans", 22, "white", "black"),
    ("dejavu-sans", 32, (40, 40, 48), "white"),
    ("dejavu-serif", 26, (225, 235, 250), (90, 10, 10)),
    ("dejavu-mono", 24, (235, 235, 235), (60, 60, 60)),
    ("dejavu-sans-bold", 20, "white", (0, 90, 0)),
]
PANGRAM = ["The quick brown fox jumps over", "the lazy dog: 0123456789, ok?"]


@pytest.mark.parametrize(("font", "size", "background", "color"), ACCURACY_CASES)
async def test_rendered_text_is_read_with_at_most_two_percent_character_errors(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine, font: str, size: int, background: object, color: object
) -> None:
    if font not in available_fonts():
        pytest.skip(f"font {font} not available here")
    ocr = await start_ocr(rapid_engine)
    png = render_text_image(PANGRAM, font=font, size=size, background=background, color=color)  # type: ignore[arg-type]
    events = await ocr.events(png)
    lines = lines_of(events)
    assert len(lines) == len(PANGRAM), lines
    assert character_error_rate("\n".join(PANGRAM), "\n".join(lines)) <= 0.02
    assert completed_of(events).full_text == "\n".join(lines)


async def test_a_paragraph_comes_back_line_by_line_in_reading_order(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    ocr = await start_ocr(rapid_engine)
    for image in (
        sample_multiline_png(),
        encode(render_text_pil(SAMPLE_PARAGRAPH, font="dejavu-serif"), "JPEG"),
    ):
        events = await ocr.events(image)
        kinds = [event.WhichOneof("event") for event in events]
        assert kinds == ["started", "page", *["line"] * len(SAMPLE_PARAGRAPH), "completed"]
        assert events[0].started.engine == "rapidocr"
        assert (events[1].page.page, events[1].page.source) == (1, "ocr")
        lines = [event.line for event in events[2:-1]]
        assert [line.index for line in lines] == list(range(len(SAMPLE_PARAGRAPH)))
        # Reading order: each line's box is below the previous one.
        tops = [min(point.y for point in line.box) for line in lines]
        assert tops == sorted(tops)
        assert all(0.0 < line.confidence <= 1.0 for line in lines)
        assert (
            character_error_rate("\n".join(SAMPLE_PARAGRAPH), "\n".join(line.text for line in lines)) <= 0.02
        )
        completed = completed_of(events)
        assert completed.line_count == len(SAMPLE_PARAGRAPH)
        assert completed.timings.total_ms >= completed.timings.recognize_ms > 0


async def test_the_first_line_reaches_the_client_before_the_last_line_is_recognised(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    engine = GatedLastLine(rapid_engine)
    ocr = await start_ocr(engine)
    call = ocr.recognize(sample_multiline_png())
    kinds: list[str] = []
    async for event in call:
        kind = event.WhichOneof("event")
        if kind == "line" and "line" not in kinds:
            # The last line's recognition cannot even have started: the engine waits for
            # this gate, which only this client opens, so the line was streamed, not batched.
            assert not engine.last_read_done.is_set()
            assert event.line.text == SAMPLE_PARAGRAPH[0]
            engine.gate.set()
        kinds.append(kind or "")
    assert engine.regions == len(SAMPLE_PARAGRAPH)
    assert kinds[0] == "started"
    assert kinds[-1] == "completed"
    assert kinds.count("line") == len(SAMPLE_PARAGRAPH)


def _png_header_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 99))
        + chunk(b"IEND", b"")
    )


MAX_BYTES = 512 * 1024
_GOOD = render_text_image(["Good image"], size=28)
BAD_INPUTS = {
    "empty": (b"", "empty"),
    "text": (b"just some text, not an image", "accepted format"),
    "gif": (encode(render_text_pil(["gif"]).convert("P"), "GIF"), "accepted format"),
    "truncated": (_GOOD[: len(_GOOD) // 2], "truncated"),
    "bomb": (_png_header_claiming(30_000, 30_000), "pixels"),
    "over the byte limit": (b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_BYTES, "bytes"),
}


async def test_bad_inputs_are_refused_with_a_reason_and_the_service_keeps_serving(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    ocr = await start_ocr(rapid_engine, ocr_max_image_bytes=MAX_BYTES)
    for name, (data, reason) in BAD_INPUTS.items():
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ocr.events(data)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert reason in (refused.value.details() or ""), (name, refused.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ocr.events(_GOOD, filename="x" * 300)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Far beyond the limit, gRPC itself refuses the message; still a clean status, no crash.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ocr.events(b"\0" * (4 * MAX_BYTES + 2 * 1024 * 1024))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert lines_of(await ocr.events(_GOOD)) == ["Good image"]
    assert await ocr.health() == SERVING


async def test_calls_without_a_valid_token_are_unauthenticated(start_ocr: StartOcr) -> None:
    engine = ScriptedEngine(["secret"])
    ocr = await start_ocr(engine)
    issuer = ocr.issuer
    for token in ("", "not-a-jwt", issuer.mint_expired(), issuer.mint_forged(), issuer.mint_alg_none()):
        call = ocr.events(_GOOD, token=token) if token else ocr.events_without_token(_GOOD)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
    assert engine.detect_calls == 0
    assert lines_of(await ocr.events(_GOOD)) == ["secret"]


async def test_calls_beyond_the_queue_get_resource_exhausted_and_the_rest_complete(
    start_ocr: StartOcr,
) -> None:
    engine = ScriptedEngine(["held"])
    held = engine.gate(0)
    # One user for every call: the per-user limit is not what this test is about.
    ocr = await start_ocr(engine, ocr_workers=1, ocr_queue_size=2, ocr_max_calls_per_user=0)

    async def call() -> str:
        try:
            return completed_of(await ocr.events(_GOOD)).full_text
        except grpc.aio.AioRpcError as exc:
            return exc.code().name

    calls = [asyncio.create_task(call()) for _ in range(3)]
    while ocr.app.pipeline.admitted < 3:
        await asyncio.sleep(0.02)
    extra = await asyncio.gather(*(call() for _ in range(4)))
    assert extra == ["RESOURCE_EXHAUSTED"] * 4
    held.set()
    assert await asyncio.gather(*calls) == ["held"] * 3


async def test_a_client_that_cancels_stops_its_work(start_ocr: StartOcr) -> None:
    engine = ScriptedEngine([f"line {i}" for i in range(50)], read_delay=0.05)
    ocr = await start_ocr(engine, ocr_workers=1, ocr_queue_size=0)
    call = ocr.recognize(_GOOD)
    async for event in call:
        if event.WhichOneof("event") == "line":
            break
    call.cancel()
    while ocr.app.pipeline.admitted:
        await asyncio.sleep(0.02)
    reads = len(engine.reads_started)
    await asyncio.sleep(0.3)
    assert len(engine.reads_started) == reads < 50
    # The only worker is free for the next caller.
    assert len(lines_of(await ocr.events(_GOOD))) == 50


class Exploding(ScriptedEngine):
    def read(self, image: RgbImage, region: TextRegion) -> RecognizedLine | None:
        raise RuntimeError("model file /srv/models/x.onnx is corrupt")


async def test_an_engine_failure_is_internal_without_details_and_the_service_survives(
    start_ocr: StartOcr,
) -> None:
    ocr = await start_ocr(Exploding(["x"]))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await ocr.events(_GOOD)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert "/srv/models" not in (failed.value.details() or "")
    with contextlib.suppress(grpc.aio.AioRpcError):
        await ocr.events(_GOOD)
    assert await ocr.health() == SERVING


class BrokenModel:
    """Loads, then fails on any image (a corrupt model file, say)."""

    name = "broken"

    def load(self) -> None:
        pass

    def detect(self, image: RgbImage) -> list[TextRegion]:
        raise RuntimeError("onnxruntime: invalid graph")

    def read(self, image: RgbImage, region: TextRegion) -> RecognizedLine | None:
        return None


async def test_an_engine_that_fails_its_warm_up_never_reports_serving(start_ocr: StartOcr) -> None:
    ocr = await start_ocr(BrokenModel(), background=True)
    assert ocr.starting is not None
    with pytest.raises(EngineUnavailable, match="failed its warm-up"):
        await ocr.starting
    assert await ocr.health() == NOT_SERVING


def _blank(width: int, height: int) -> bytes:
    return encode(Image.new("RGB", (width, height), "white"), "PNG")


async def test_extreme_shapes_are_handled_without_errors(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    ocr = await start_ocr(rapid_engine)
    for width, height in [(1, 1), (5000, 1), (1, 5000), (40000, 10), (10, 40000), (3, 2)]:
        events = await ocr.events(_blank(width, height))
        assert events[0].started.image_width == width
        assert completed_of(events).line_count == 0
    strip = Image.new("RGB", (3000, 40), "white")
    ImageDraw.Draw(strip).text(
        (1000, 6), "A long thin receipt strip 42", fill="black", font=load_font("pillow-default", 26)
    )
    assert lines_of(await ocr.events(encode(strip, "PNG"))) == ["A long thin receipt strip 42"]
