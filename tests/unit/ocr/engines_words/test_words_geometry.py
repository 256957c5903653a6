"""Cutting a line's crop as rapidocr cuts it (a box on whole pixels sliced, to the same
pixels), and mapping word rectangles of the crop back to the page: through the crop's
perspective transform (slanted lines) and its quarter turn (tall crops), so a word's box
follows its line and stays inside it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rapidocr.utils.process_img import get_rotate_crop_image

from ocr_svc.engines.base import Quad
from ocr_svc.engines.words import CropGeometry, CropReading, CropWord, line_from_words, page_words


def rotated_rectangle(cx: float, cy: float, width: float, height: float, degrees: float) -> Quad:
    """A width x height rectangle centred on (cx, cy), turned `degrees` clockwise on the
    page (y down), corners clockwise from its top-left."""
    a = math.radians(degrees)
    along, across = (math.cos(a), math.sin(a)), (-math.sin(a), math.cos(a))

    def corner(u: float, v: float) -> tuple[float, float]:
        return (cx + u * along[0] + v * across[0], cy + u * along[1] + v * across[1])

    w, h = width / 2, height / 2
    return (corner(-w, -h), corner(w, -h), corner(w, h), corner(-w, h))


def inside(point: tuple[float, float], quad: Quad, tolerance: float = 1e-6) -> bool:
    """Whether `point` is inside the convex `quad` (clockwise, y down), within `tolerance`
    pixels."""
    for (x0, y0), (x1, y1) in zip(quad, quad[1:] + quad[:1], strict=True):
        # Signed distance from the edge, positive inside.
        cross = (x1 - x0) * (point[1] - y0) - (y1 - y0) * (point[0] - x0)
        if cross / math.hypot(x1 - x0, y1 - y0) < -tolerance:
            return False
    return True


@pytest.mark.parametrize("degrees", [0.0, 4.0, -7.5, 20.0])
def test_the_crop_is_cut_exactly_as_rapidocr_cuts_it(degrees: float) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    box = rotated_rectangle(250, 150, 320, 40, degrees)
    geometry = CropGeometry.of(box)
    theirs = get_rotate_crop_image(image, np.array(box, dtype=np.float32))
    np.testing.assert_array_equal(geometry.crop(image), theirs)
    assert geometry.read_size == (theirs.shape[1], theirs.shape[0])


@pytest.mark.parametrize(
    "box",
    [
        ((37.0, 12.0), (451.0, 12.0), (451.0, 70.0), (37.0, 70.0)),  # inside: cut as it is
        ((0.0, 0.0), (500.0, 0.0), (500.0, 300.0), (0.0, 300.0)),  # the whole page
        ((460.0, 280.0), (520.0, 280.0), (520.0, 310.0), (460.0, 310.0)),  # past the edges
        ((37.5, 12.0), (451.5, 12.0), (451.5, 70.0), (37.5, 70.0)),  # between pixels
    ],
)
def test_a_box_on_whole_pixels_is_cut_as_the_warp_would_cut_it(box: Quad) -> None:
    image = np.random.default_rng(5).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    theirs = get_rotate_crop_image(image, np.array(box, dtype=np.float32))
    np.testing.assert_array_equal(CropGeometry.of(box).crop(image), theirs)


def test_a_tall_crop_is_turned_a_quarter_as_rapidocr_turns_it() -> None:
    image = np.random.default_rng(4).integers(0, 256, (400, 200, 3), dtype=np.uint8)
    box: Quad = ((80.0, 20.0), (120.0, 20.0), (120.0, 320.0), (80.0, 320.0))
    geometry = CropGeometry.of(box)
    assert geometry.rotated
    theirs = get_rotate_crop_image(image, np.array(box, dtype=np.float32))
    np.testing.assert_array_equal(geometry.crop(image), theirs)
    assert geometry.read_size == (300, 40)


@pytest.mark.parametrize("degrees", [0.0, 3.0, -12.0, 25.0])
def test_a_word_of_a_slanted_line_follows_the_line(degrees: float) -> None:
    box = rotated_rectangle(400, 300, 600, 50, degrees)
    geometry = CropGeometry.of(box)
    width, height = geometry.read_size
    # The corners of the crop are the line's corners.
    for crop_point, page_point in zip([(0, 0), (width, 0), (width, height), (0, height)], box, strict=True):
        assert geometry.to_page(*crop_point) == pytest.approx(page_point, abs=1e-3)
    # A word from 25% to 50% of the line, full height: a slice of the line's quad, its
    # top edge on the line's top edge, as slanted as the line.
    quad = geometry.quad(0.25 * width, 0.0, 0.5 * width, float(height))
    (tl, tr, br, bl) = box

    def along(p: tuple[float, float], q: tuple[float, float], t: float) -> tuple[float, float]:
        return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t)

    expected = (along(tl, tr, 0.25), along(tl, tr, 0.5), along(bl, br, 0.5), along(bl, br, 0.25))
    for got, want in zip(quad, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-3)
    slope = math.degrees(math.atan2(quad[1][1] - quad[0][1], quad[1][0] - quad[0][0]))
    assert slope == pytest.approx(degrees, abs=1e-3)
    assert all(inside(corner, box, tolerance=1e-3) for corner in quad)


@pytest.mark.parametrize(
    "box",
    [
        rotated_rectangle(260, 180, 360, 44, 9.0),
        rotated_rectangle(260, 180, 360, 44, -15.0),
        # A tall line, read turned a quarter.
        ((230.0, 40.0), (270.0, 40.0), (270.0, 330.0), (230.0, 330.0)),
    ],
)
def test_a_mark_found_in_the_crop_maps_back_to_where_it_is_on_the_page(box: Quad) -> None:
    image = np.full((400, 520, 3), 255, dtype=np.uint8)
    geometry = CropGeometry.of(box)
    # A dark 3 x 3 mark at a third of the way along the line, a little above its middle.
    tl, tr, _, bl = np.array(box)
    mark = (
        tl + (tr - tl) / 3 + (bl - tl) * 0.4 if not geometry.rotated else tl + (bl - tl) / 3 + (tr - tl) * 0.4
    )
    x, y = round(mark[0]), round(mark[1])
    image[y - 1 : y + 2, x - 1 : x + 2] = 0
    crop = geometry.crop(image)
    rows, columns = np.nonzero(crop.min(axis=2) < 128)
    found = geometry.to_page(float(columns.mean()) + 0.5, float(rows.mean()) + 0.5)
    assert found == pytest.approx((x + 0.5, y + 0.5), abs=1.5)


def test_words_are_mapped_clipped_to_the_crop_and_the_line_text_is_their_join() -> None:
    box = rotated_rectangle(300, 200, 400, 40, 6.0)
    geometry = CropGeometry.of(box)
    width, height = geometry.read_size
    reading = CropReading(
        text="ignored",
        confidence=0.9,
        words=(
            CropWord("Harbour", 0.98, -3.0, -2.0, 120.0, height + 5.0),
            CropWord("", 0.5, 125.0, 0.0, 126.0, height),
            CropWord("council", 1.4, 140.0, 2.0, float(width) + 9.0, height - 2.0),
        ),
    )
    words = page_words(reading, geometry)
    assert [word.text for word in words] == ["Harbour", "council"]
    assert [word.confidence for word in words] == [0.98, 1.0]
    for word in words:
        assert all(inside(corner, box, tolerance=1e-3) for corner in word.box)
    line = line_from_words(words, 0.9, box)
    assert line is not None
    assert line.text == "Harbour council"
    assert line.text == " ".join(word.text for word in line.words)
    assert line.box == box


def test_a_line_without_words_is_nothing() -> None:
    box = rotated_rectangle(100, 100, 100, 20, 0.0)
    assert line_from_words([], 0.9, box) is None
