"""An untidy magazine page through ocr_svc with the real default engine (issue 25): an
L-shaped heading over columns 2-4 beside a full-height column 1, a caption across columns
1-2 that blocks every XY-cut, a figure and its caption inside column 3, columns of unequal
width and height, a running header over a rule, a page number, speckle (harness/magazine.py).

Recursive XY-cut read this page at CER 0.65-0.72 (one block alternating between the
columns, as it did on real scans); the page is 2200 px high (two thirds of Letter) so that
it takes seconds on two cores.
"""

from __future__ import annotations

import difflib
from functools import cache

import pytest

from harness.magazine import MagazinePage, MagazineSpec, render_magazine
from harness.pages import page_error_rate
from ocr_svc.engines import warm_up
from ocr_svc.engines.rapid import RapidOcrEngine
from ocrmesh.ocr.v1 import ocr_pb2
from tests.integration.ocr.conftest import StartOcr
from tests.integration.ocr.ocr_support import completed_of

pytestmark = pytest.mark.integration

MAX_PAGE_CER = 0.05
# A recognised line is matched to the truth line it reads most like when it reads at least
# this much like it (a speck read as "." matches nothing).
MATCHED = 0.6


@cache
def magazine_page(seed: int = 3, height: int = 2200) -> MagazinePage:
    return render_magazine(MagazineSpec(seed=seed, height=height))


@pytest.fixture(scope="module")
def engine() -> RapidOcrEngine:
    engine = RapidOcrEngine(threads=1, spread_threads=2)
    warm_up(engine)
    return engine


def matched_truth(page: MagazinePage, texts: list[str]) -> list[int | None]:
    """For each recognised line, the truth line it reads like, if any."""
    matches: list[int | None] = []
    for text in texts:
        scores = [difflib.SequenceMatcher(None, text, truth).ratio() for truth in page.truth_lines]
        best = max(range(len(scores)), key=scores.__getitem__)
        matches.append(best if scores[best] >= MATCHED else None)
    return matches


@pytest.mark.parametrize("image_format", ["tiff", "jpeg"])
async def test_an_l_shaped_magazine_page_is_read_in_reading_order_with_few_errors(
    start_ocr: StartOcr, engine: RapidOcrEngine, image_format: str
) -> None:
    page = magazine_page()
    ocr = await start_ocr(engine, ocr_workers=2, ocr_engine_threads=1)
    events = await ocr.events(page.tiff if image_format == "tiff" else page.jpeg)
    lines: list[ocr_pb2.Line] = [event.line for event in events if event.WhichOneof("event") == "line"]
    completed = completed_of(events)
    assert completed.full_text == "\n".join(line.text for line in lines)

    cer = page_error_rate(page.truth_text, completed.full_text)
    assert cer <= MAX_PAGE_CER, f"{page.spec.name} {image_format}: CER {cer:.3f}"

    # Header, column 1, the heading, column 2, the wide caption, column 3 with its figure's
    # caption, column 4, the page number: every truth line once, in that order.
    matches = matched_truth(page, [line.text for line in lines])
    found = [m for m in matches if m is not None]
    assert found == list(range(len(page.truth_lines))), found

    # Blocks in reading order, none of them across two regions of the page.
    blocks = [line.block for line in lines]
    assert blocks == sorted(blocks)
    regions: dict[int, set[str]] = {}
    for line, match in zip(lines, matches, strict=True):
        if match is not None:
            regions.setdefault(line.block, set()).add(page.truth_regions[match])
    assert all(len(names) == 1 for names in regions.values()), regions


@pytest.mark.parametrize("seed", [9, 10])
async def test_a_caption_at_the_foot_under_two_columns_is_read_after_them_on_a_full_page(
    start_ocr: StartOcr, engine: RapidOcrEngine, seed: int
) -> None:
    # Full Letter pages whose wide caption sits under columns 1-2 at the foot, below the
    # end of column 3 (seed 10: the page number is lost to the layout, so the caption is the
    # last thing on the page). Both read at CER 0.073-0.078, the caption after column 4.
    page = magazine_page(seed, 3300)
    ocr = await start_ocr(engine, ocr_workers=2, ocr_engine_threads=1)
    events = await ocr.events(page.tiff)
    text = completed_of(events).full_text
    cer = page_error_rate(page.truth_text, text)
    assert cer <= MAX_PAGE_CER, f"{page.spec.name}: CER {cer:.3f}"
    matches = matched_truth(page, text.split("\n"))
    found = [m for m in matches if m is not None]
    assert found == sorted(set(found)), found
    # Every line but the page number, which Tesseract's layout leaves out on seed 10.
    assert set(range(len(page.truth_lines) - 1)) <= set(found), found
