"""Pages turned upright: Tesseract's OSD finds the quarter turn, the projection profile
the skew; both undone, and a page with nothing to go on is left as it is."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from harness.documents import turned_page
from harness.pages import PageSpec, render_page
from ocr_svc.documents.upright import OrientationDetector, find_skew, make_upright, rotate_by, to_grey
from ocr_svc.engines.base import RgbImage
from ocr_svc.engines.tesseract_reader import installed_models


def pixels_of(data: bytes) -> RgbImage:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def detector() -> OrientationDetector:
    directory, models = installed_models(None)
    if directory is None or "osd" not in models:
        pytest.skip("osd.traineddata is not installed (Debian: tesseract-ocr-osd)")
    return OrientationDetector(directory)


@pytest.mark.parametrize(("turn", "skew"), [(90, 0.0), (180, 0.0), (270, -4.0)])
def test_a_turned_and_crooked_page_is_stood_upright_and_straightened(
    detector: OrientationDetector, turn: int, skew: float
) -> None:
    doc = turned_page(turn, skew)
    upright = make_upright(pixels_of(doc.data), detector)
    assert upright.rotation == doc.upright_rotation
    assert upright.skew == pytest.approx(skew, abs=0.3)
    # Upright: a page strip is wider than it is tall again.
    assert upright.pixels.shape[1] > upright.pixels.shape[0]


@pytest.mark.parametrize("skew", [-4.0, -1.5, 2.5, 4.0, 8.0])
def test_the_skew_is_found_within_a_few_tenths_of_a_degree(skew: float) -> None:
    doc = turned_page(0, skew)
    assert find_skew(to_grey(pixels_of(doc.data))) == pytest.approx(skew, abs=0.3)


def test_an_upright_page_is_left_alone(detector: OrientationDetector) -> None:
    doc = turned_page(0, 0.0)
    pixels = pixels_of(doc.data)
    upright = make_upright(pixels, detector)
    assert (upright.rotation, upright.skew) == (0, 0.0)
    assert upright.pixels is pixels


def test_a_blank_page_has_no_orientation_and_no_skew(detector: OrientationDetector) -> None:
    blank = np.full((600, 800, 3), 235, dtype=np.uint8)
    assert detector.clockwise_turn(to_grey(blank)) == 0
    assert find_skew(to_grey(blank)) == 0.0


def test_straightening_keeps_every_corner_of_the_page() -> None:
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    rotated = rotate_by(pixels, 10.0)
    assert rotated.shape[0] > 100
    assert rotated.shape[1] > 200


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_a_dense_page_of_small_print_turned_is_found_turned(detector: OrientationDetector, turn: int) -> None:
    # Four columns of 8.6 pt text on a 300 dpi Letter page: downscaled too far for OSD
    # (1500 px), this print came back "upright, unsure" for most turns.
    page = render_page(PageSpec(columns=4, seed=1, body_px=36))
    grey = np.asarray(page.image.convert("L"))
    # np.rot90 turns counter-clockwise: standing it up again is `turn` degrees clockwise.
    turned = np.ascontiguousarray(np.rot90(grey, k=turn // 90))
    assert detector.clockwise_turn(turned) == turn
