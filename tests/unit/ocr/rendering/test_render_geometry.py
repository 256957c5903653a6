"""Upright page pixels back to the original page: checked against Pillow, which turns and
tilts a page the way a crooked scan is (as `harness.documents` makes them) and the way
ocr_svc stands it upright."""

from __future__ import annotations

import io

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from ocr_svc.rendering import render
from ocr_svc.rendering.geometry import PageGeometry
from ocrmesh.rules.ocr_events import CompletedEvent, LineEvent, PageEvent, StartedEvent, Word
from tests.unit.ocr.rendering.sample_documents import quad, stream

MARK = (150, 100, 180, 118)  # a dark box on the upright page, left, top, right, bottom
PAGE = (600, 400)


def upright_page() -> Image.Image:
    image = Image.new("L", PAGE, 255)
    ImageDraw.Draw(image).rectangle(MARK, fill=0)
    return image


def mark_centre(image: Image.Image) -> tuple[float, float]:
    """Where the dark box is in `image` (the centroid of its dark pixels)."""
    pixels = np.asarray(image)
    ys, xs = np.nonzero(pixels < 128)
    return float(xs.mean()), float(ys.mean())


def crooked_scan(turn: int, skew: float) -> Image.Image:
    """The page turned `turn` degrees clockwise, then tilted `skew` counter-clockwise."""
    scan = upright_page().rotate(-turn, expand=True, fillcolor=255)
    return scan.rotate(skew, expand=True, fillcolor=255) if skew else scan


def stood_upright(scan: Image.Image, rotation: int, skew: float) -> Image.Image:
    """What ocr_svc reads: the scan turned `rotation` clockwise, then straightened."""
    turned = scan.rotate(-rotation, expand=True, fillcolor=255)
    return turned.rotate(-skew, expand=True, fillcolor=255) if skew else turned


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
@pytest.mark.parametrize("skew", [0.0, 4.0, -6.5])
def test_an_upright_pixel_maps_back_to_where_it_is_on_the_scan(turn: int, skew: float) -> None:
    scan = crooked_scan(turn, skew)
    rotation = (360 - turn) % 360
    upright = stood_upright(scan, rotation, skew)
    geometry = PageGeometry(
        width=upright.width,
        height=upright.height,
        rotation=rotation,
        skew=skew,
        dpi=72.0,  # a point a pixel: user space is the scan's pixels with y up
        box=(0.0, 0.0, float(scan.width), float(scan.height)),
    )

    x, y = geometry.upright_to_user(*mark_centre(upright))

    expected_x, expected_y = mark_centre(scan)
    assert x == pytest.approx(expected_x, abs=1.5)
    assert scan.height - y == pytest.approx(expected_y, abs=1.5)


@pytest.mark.parametrize("page_rotate", [0, 90, 180, 270])
def test_a_shown_page_maps_to_user_space_through_its_rotate_and_box(page_rotate: int) -> None:
    # A 200 x 100 pt MediaBox at (50, 30), shown turned by /Rotate: its shown top-left
    # corner and the pixel (10, 0) right of it, at 144 dpi (half a point a pixel).
    shown = (200, 100) if page_rotate % 180 == 0 else (100, 200)
    geometry = PageGeometry(
        width=shown[0] * 2,
        height=shown[1] * 2,
        rotation=0,
        skew=0.0,
        dpi=144.0,
        box=(50.0, 30.0, 250.0, 130.0),
        page_rotate=page_rotate,
    )
    corners = {0: (50, 130), 90: (50, 30), 180: (250, 30), 270: (250, 130)}
    rightwards = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}

    assert geometry.upright_to_user(0, 0) == pytest.approx(corners[page_rotate])
    step = rightwards[page_rotate]
    corner = corners[page_rotate]
    assert geometry.upright_to_user(10, 0) == pytest.approx(
        (corner[0] + 5 * step[0], corner[1] + 5 * step[1])
    )


async def test_the_text_layer_of_a_turned_crooked_scan_lies_on_the_words_pixels() -> None:
    scan = crooked_scan(90, 5.0)
    upright = stood_upright(scan, 270, 5.0)
    buffer = io.BytesIO()
    scan.save(buffer, format="PNG", dpi=(144, 144))
    # One word whose box is the mark on the upright page (as ocr_svc would read it).
    ux, uy = mark_centre(upright)
    half_w, half_h = (MARK[2] - MARK[0]) / 2, (MARK[3] - MARK[1]) / 2
    box = (ux - half_w, uy - half_h, ux + half_w, uy + half_h)
    events = [
        StartedEvent(engine="scripted", image_width=upright.width, image_height=upright.height),
        PageEvent(page=1, width=upright.width, height=upright.height, rotation=270, skew=5.0, dpi=144.0),
        LineEvent(
            index=0,
            text="Mốc",
            confidence=0.9,
            box=quad(box),
            page=1,
            words=[Word(text="Mốc", confidence=0.9, box=quad(box))],
        ),
        CompletedEvent(full_text="Mốc", line_count=1),
    ]

    output = b"".join([chunk async for chunk in render(stream(events), buffer.getvalue(), "pdf")])

    pdf = pdfium.PdfDocument(output)
    try:
        page = pdf[0]
        assert (page.get_width(), page.get_height()) == pytest.approx((scan.width / 2, scan.height / 2))
        textpage = page.get_textpage()
        boxes = [textpage.get_charbox(index) for index in range(textpage.count_chars())]
        centre_x = sum((b[0] + b[2]) / 2 for b in boxes) / len(boxes)
        centre_y = sum((b[1] + b[3]) / 2 for b in boxes) / len(boxes)
        mark_x, mark_y = mark_centre(scan)
        # Points, y up, half a point a pixel: within a couple of points of the mark.
        assert centre_x == pytest.approx(mark_x / 2, abs=3)
        assert centre_y == pytest.approx((scan.height - mark_y) / 2, abs=3)
    finally:
        pdf.close()
