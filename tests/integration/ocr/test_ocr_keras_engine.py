"""The keras-ocr engine for real (TensorFlow, CRAFT + CRNN) with weight files saved from
randomly initialised models: loading, the pipeline and the streaming run; accuracy is out
of reach without the published weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from PIL import Image

from harness.images import encode, render_text_image
from ocr_svc.engines.base import EngineUnavailable
from ocr_svc.engines.keras import KerasOcrEngine
from tests.integration.ocr.conftest import StartOcr
from tests.integration.ocr.ocr_support import completed_of

pytestmark = [pytest.mark.integration, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[3]
IMAGE = render_text_image(["Keras line one", "and line two"], size=20)


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    spec = importlib.util.spec_from_file_location(
        "make_keras_test_weights", ROOT / "scripts/make_keras_test_weights.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    detector, recognizer = module.make_weights(tmp_path_factory.mktemp("keras-weights"))
    return detector, recognizer


async def test_the_keras_engine_streams_lines_through_the_service(
    start_ocr: StartOcr, random_weights: tuple[Path, Path]
) -> None:
    detector, recognizer = random_weights
    engine = KerasOcrEngine(detector_weights=detector, recognizer_weights=recognizer, threads=2)
    ocr = await start_ocr(engine)
    assert await ocr.health() == health_pb2.HealthCheckResponse.SERVING
    events = await ocr.events(IMAGE)
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "started"
    assert kinds[-1] == "completed"
    assert events[0].started.engine == "keras"
    assert (events[0].started.image_width, events[0].started.image_height) > (0, 0)
    lines = [event.line for event in events if event.WhichOneof("event") == "line"]
    assert lines, "the random-weight detector marks the whole image as text: one line at least"
    for index, line in enumerate(lines):
        assert line.index == index
        assert line.text
        assert 0.0 <= line.confidence <= 1.0
        assert len(line.box) == 4
    completed = completed_of(events)
    assert completed.line_count == len(lines)
    assert completed.full_text == "\n".join(line.text for line in lines)
    assert completed.timings.detect_ms > 0
    # A strip thinner than the network's downsampling still goes through.
    for width, height in [(3000, 1), (1, 3000)]:
        events = await ocr.events(encode(Image.new("RGB", (width, height), "white"), "PNG"))
        assert events[-1].WhichOneof("event") == "completed"


async def test_a_weight_file_that_does_not_fit_the_model_stops_start_up(
    start_ocr: StartOcr, random_weights: tuple[Path, Path]
) -> None:
    detector, recognizer = random_weights
    engine = KerasOcrEngine(detector_weights=recognizer, recognizer_weights=detector)
    with pytest.raises(EngineUnavailable, match="cannot load detector weights"):
        await start_ocr(engine)


async def test_the_keras_engine_without_weights_stops_start_up_with_a_clear_message(
    start_ocr: StartOcr, tmp_path: Path
) -> None:
    with pytest.raises(EngineUnavailable) as failed:
        await start_ocr(KerasOcrEngine(cache_dir=tmp_path))
    message = str(failed.value)
    assert "craft_mlt_25k.h5" in message
    assert "crnn_kurapan.h5" in message
    assert "KERAS_OCR_CACHE_DIR" in message


async def test_an_unready_keras_service_refuses_nothing_silently(start_ocr: StartOcr, tmp_path: Path) -> None:
    # Health stays NOT_SERVING when the engine cannot load, so nothing routes calls to it.
    ocr = await start_ocr(KerasOcrEngine(cache_dir=tmp_path), background=True)
    assert ocr.starting is not None
    with pytest.raises(EngineUnavailable):
        await ocr.starting
    assert await ocr.health() == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError):
        await ocr.health("no.such.Service")
