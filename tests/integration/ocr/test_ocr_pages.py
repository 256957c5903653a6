"""Scanned multi-column pages through ocr_svc with the real engine: reading order across
columns, character error rate, and a stream whose order is the completed text's.

The pages (harness/pages.py) are 300 dpi, binarised, with a full-width heading over
2, 3 or 4 columns, as a G4 TIFF and as a noisy, slightly skewed JPEG; Letter width, a
third of its height and 9 lines per column, so the six of them take seconds, not minutes,
on two cores. The engine runs as ocr_svc runs it by default on two cores: two workers,
one inference thread per call, detection of an image alone on two threads.
"""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path

import pytest

from harness.pages import GeneratedPage, PageSpec, page_error_rate, render_page
from ocr_svc.engines import warm_up
from ocr_svc.engines.base import EngineUnavailable
from ocr_svc.engines.rapid import RapidOcrEngine
from ocr_svc.engines.tesseract_lines import TesseractLineEngine, find_tessdata
from ocr_svc.images import ImageLimits, decode_image
from ocrmesh.ocr.v1 import ocr_pb2
from tests.integration.ocr.conftest import StartOcr
from tests.integration.ocr.ocr_support import completed_of

pytestmark = pytest.mark.integration

MAX_PAGE_CER = 0.05
LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)


@cache
def short_page(columns: int) -> GeneratedPage:
    return render_page(PageSpec(columns=columns, seed=columns, height=1100, lines_per_column=9))


@pytest.fixture(scope="module")
def engine() -> RapidOcrEngine:
    engine = RapidOcrEngine(threads=1, spread_threads=2)
    warm_up(engine)
    return engine


@pytest.fixture(scope="module")
def tesseract_engine() -> RapidOcrEngine:
    """The same engine with Tesseract's LSTM reading the lines (OCR_RECOGNIZER=tesseract)."""
    try:
        find_tessdata(None)
    except EngineUnavailable as exc:
        pytest.skip(f"{exc} (`python scripts/debian_tools.py test`, run by `make test`, installs it)")
    engine = TesseractLineEngine(threads=1, spread_threads=2)
    warm_up(engine)
    return engine


@pytest.fixture(params=["ppocr", "tesseract"])
def recognizer_engine(request: pytest.FixtureRequest) -> RapidOcrEngine:
    """The engine with each OCR_RECOGNIZER."""
    name = "engine" if request.param == "ppocr" else "tesseract_engine"
    engine: RapidOcrEngine = request.getfixturevalue(name)
    return engine


def truth_positions(page: GeneratedPage, texts: list[str]) -> list[int]:
    """For each recognised line, the truth line it reads most like."""
    positions = []
    for text in texts:
        scores = [difflib.SequenceMatcher(None, text, truth).ratio() for truth in page.truth_lines]
        positions.append(max(range(len(scores)), key=scores.__getitem__))
    return positions


@pytest.mark.parametrize("image_format", ["tiff", "jpeg"])
@pytest.mark.parametrize("columns", [2, 3, 4])
async def test_a_scanned_page_is_read_column_after_column_with_few_errors(
    start_ocr: StartOcr, recognizer_engine: RapidOcrEngine, columns: int, image_format: str
) -> None:
    page = short_page(columns)
    ocr = await start_ocr(recognizer_engine, ocr_workers=2, ocr_engine_threads=1)
    events = await ocr.events(page.tiff if image_format == "tiff" else page.jpeg)
    lines: list[ocr_pb2.Line] = [event.line for event in events if event.WhichOneof("event") == "line"]
    completed = completed_of(events)

    # The stream is the completed text, line for line, in the same order.
    assert [line.index for line in lines] == list(range(len(lines)))
    assert completed.full_text == "\n".join(line.text for line in lines)
    assert completed.line_count == len(lines)

    cer = page_error_rate(page.truth_text, completed.full_text)
    assert cer <= MAX_PAGE_CER, f"{page.spec.name} {image_format}: CER {cer:.3f}"

    # Reading order: heading, then column 1 top to bottom, column 2, ...
    positions = truth_positions(page, [line.text for line in lines])
    assert positions == sorted(positions), positions
    # Blocks: one for the heading, then one per column, numbered in reading order.
    truth_block = [page.truth_blocks[p] for p in positions]
    blocks = [line.block for line in lines]
    assert blocks == sorted(blocks)
    assert len(set(blocks)) == columns + 1
    assert all(
        (a == b) == (ta == tb)
        for a, b, ta, tb in zip(blocks, blocks[1:], truth_block, truth_block[1:], strict=False)
    )


@pytest.mark.parametrize("image_format", ["tiff", "jpeg"])
def test_detection_on_two_threads_finds_the_same_lines_as_on_one(
    engine: RapidOcrEngine, image_format: str
) -> None:
    page = short_page(3)
    pixels = decode_image(page.tiff if image_format == "tiff" else page.jpeg, LIMITS).pixels
    one = engine.detect(pixels)
    two = engine.detect_spread(pixels, 2)
    assert len(two) == len(one) == len(page.truth_lines)
    for a, b in zip(one, two, strict=True):
        assert (
            max(abs(p - q) for pa, pb in zip(a.box, b.box, strict=True) for p, q in zip(pa, pb, strict=True))
            < 1.0
        )


def test_without_tesseracts_model_the_tesseract_recognizer_refuses_to_start_and_says_what_to_install(
    tmp_path: Path,
) -> None:
    engine = TesseractLineEngine(threads=1, tessdata_dir=tmp_path)
    with pytest.raises(EngineUnavailable) as refused:
        engine.load()
    assert "eng.traineddata" in str(refused.value)
    assert "tesseract-ocr-eng" in str(refused.value)
    assert str(tmp_path) in str(refused.value)
