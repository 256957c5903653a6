"""Pure geometry helpers the engines share: padding thin strips, fitting images for
rapidocr's resizing, clipping boxes."""

from __future__ import annotations

import numpy as np

from ocr_svc.engines.base import bounding_quad, clip_quad, pad_bottom_right
from ocr_svc.engines.rapid import (
    RECOGNITION_HEIGHT,
    RECOGNITION_MIN_WIDTH,
    fit_for_detection,
    recognition_input,
)


def test_padding_keeps_the_original_pixels_where_they_were_and_fills_with_the_page_colour() -> None:
    image = np.full((3, 10, 3), 240, dtype=np.uint8)
    image[1, 4] = (0, 0, 0)
    padded = pad_bottom_right(image, 8, 8)
    assert padded.shape == (8, 10, 3)
    assert padded[1, 4].tolist() == [0, 0, 0]
    assert padded[7, 9].tolist() == [240, 240, 240]


def test_an_image_big_enough_is_not_copied() -> None:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    assert pad_bottom_right(image, 32, 32) is image


def test_a_large_image_is_shrunk_to_the_maximum_side_with_the_factors_to_map_back() -> None:
    image = np.full((1000, 8000, 3), 255, dtype=np.uint8)
    fitted, ratio_h, ratio_w = fit_for_detection(image, 2000, 30)
    assert fitted.shape[:2] == (250, 2000)
    assert (ratio_h, ratio_w) == (4.0, 4.0)


def test_an_extreme_strip_is_padded_instead_of_stretched() -> None:
    image = np.full((1, 5000, 3), 255, dtype=np.uint8)
    fitted, ratio_h, ratio_w = fit_for_detection(image, 2000, 30)
    assert fitted.shape[:2] == (30, 2000)
    assert ratio_w == 2.5
    assert ratio_h == 1.0


def test_a_small_image_is_left_for_rapidocr_to_enlarge() -> None:
    image = np.full((10, 60, 3), 255, dtype=np.uint8)
    fitted, ratio_h, ratio_w = fit_for_detection(image, 2000, 30)
    assert fitted is image
    assert (ratio_h, ratio_w) == (1.0, 1.0)


def test_boxes_are_clipped_to_the_image_and_bounded() -> None:
    quad = ((-5.0, 2.0), (120.0, 2.0), (120.0, 50.0), (-5.0, 50.0))
    assert clip_quad(quad, 100, 40) == ((0.0, 2.0), (100.0, 2.0), (100.0, 40.0), (0.0, 40.0))
    a = ((0.0, 0.0), (10.0, 0.0), (10.0, 5.0), (0.0, 5.0))
    b = ((20.0, 2.0), (30.0, 2.0), (30.0, 9.0), (20.0, 9.0))
    assert bounding_quad([a, b]) == ((0.0, 0.0), (30.0, 0.0), (30.0, 9.0), (0.0, 9.0))


def test_crops_are_prepared_for_recognition_exactly_as_rapidocr_prepares_them() -> None:
    from types import SimpleNamespace

    from rapidocr.ch_ppocr_rec.main import TextRecognizer

    rng = np.random.default_rng(7)
    # A short word (padded to 320 px), a column line and a wide heading line, BGR uint8.
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 90), (57, 460), (102, 2124))]
    batch = recognition_input(crops)
    widest = max(320 / 48, 2124 / 102)
    assert batch.dtype == np.float32
    assert batch.flags.c_contiguous
    assert batch.shape == (3, 3, RECOGNITION_HEIGHT, int(48 * widest))
    theirs = SimpleNamespace(rec_image_shape=[3, 48, 320])
    for crop, ours in zip(crops, batch, strict=True):
        np.testing.assert_allclose(ours, TextRecognizer.resize_norm_img(theirs, crop, widest), atol=1e-6)  # type: ignore[arg-type]
    # Alone, a short crop is still padded to rapidocr's minimum width.
    assert recognition_input(crops[:1]).shape == (1, 3, 48, RECOGNITION_MIN_WIDTH)
