"""Every recognised line carries its words, located by the engine: the real default engine
(PP-OCR's CTC time steps fitted to the ink) and the Tesseract route (its word iterator,
through `read_batch_in`), on generated pages whose text and fonts are known.

For each line: the words joined with single spaces are the line's text, each word's box is
inside the line's box, the words go left to right without overlapping, and their count is
the truth's. Where a word is, is checked against the font: on a line read exactly, each
word's left and right edges, measured from the line's first word, are where the font's
metrics put them, within a few pixels, much closer than an even split of the line by
characters would put them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from harness.images import load_font
from harness.language_pages import FONT_FILES, TEXT_PX, FontMissing, LanguagePage, language_page
from harness.pages import PageSpec, render_page
from ocr_svc.engines.base import Quad, RecognizedLine, RgbImage
from ocr_svc.engines.rapid import RapidOcrEngine
from ocr_svc.engines.tesseract_reader import installed_models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

INSTALL_HINT = "`python scripts/debian_tools.py test`, run by `make test`, installs it"
# Pixels a word's box may pass its line's box by (the line's box is the detector's, the
# word's Tesseract's own, both rounded).
OUTSIDE_TOLERANCE = 2.0
# How far (pixels, mean over the words of the lines read exactly) a word's edges may be
# from where the font puts them, relative to the line's first word.
MEAN_EDGE_ERROR = 3.0

FontLike = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class TruthLine:
    text: str
    font: FontLike


@pytest.fixture(scope="module")
def dense_page() -> tuple[RgbImage, list[TruthLine]]:
    """A 2-column page (a heading over 2 x 8 lines of body text), as its G4 TIFF decodes."""
    spec = PageSpec(columns=2, seed=5, lines_per_column=8)
    page = render_page(spec)
    heading = load_font("dejavu-sans-bold", spec.heading_px)
    body = load_font("dejavu-serif", spec.body_px)
    truth = [
        TruthLine(line, heading if block == 0 else body)
        for line, block in zip(page.truth_lines, page.truth_blocks, strict=True)
    ]
    return np.asarray(Image.open(io.BytesIO(page.tiff)).convert("RGB")), truth


def language_page_in(code: str, model: str) -> LanguagePage:
    _, models = installed_models(None)
    if not {model, "eng"} <= models:
        pytest.skip(f"Tesseract's {model}.traineddata is not installed ({INSTALL_HINT})")
    try:
        return language_page(code)
    except FontMissing as exc:
        pytest.skip(f"{exc} ({INSTALL_HINT})")


def language_truth(page: LanguagePage) -> list[TruthLine]:
    font = ImageFont.truetype(str(FONT_FILES[page.language]), TEXT_PX)
    return [TruthLine(line, font) for line in page.truth_lines]


def inside(point: tuple[float, float], quad: Quad, tolerance: float) -> bool:
    """`point` inside the convex, clockwise `quad`, within `tolerance` pixels."""
    for (x0, y0), (x1, y1) in zip(quad, quad[1:] + quad[:1], strict=True):
        cross = (x1 - x0) * (point[1] - y0) - (y1 - y0) * (point[0] - x0)
        if cross / max(math.hypot(x1 - x0, y1 - y0), 1e-9) < -tolerance:
            return False
    return True


def along(point: tuple[float, float], quad: Quad) -> float:
    """How far `point` is along `quad`'s top edge from its top-left corner (pixels)."""
    (x0, y0), (x1, y1) = quad[0], quad[1]
    length = max(math.hypot(x1 - x0, y1 - y0), 1e-9)
    return ((point[0] - x0) * (x1 - x0) + (point[1] - y0) * (y1 - y0)) / length


def word_extents(line: RecognizedLine) -> list[tuple[float, float]]:
    """Each word's (start, end) along its line, in pixels from the line's box's start."""
    extents = []
    for word in line.words:
        positions = [along(corner, line.box) for corner in word.box]
        extents.append((min(positions), max(positions)))
    return extents


def font_extents(text: str, font: FontLike) -> list[tuple[float, float]]:
    """Each word's (start, end) of ink as the font draws `text` from x = 0: the word drawn
    alone where the line puts it, its ink's first and last columns."""
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    extents = []
    start = 0
    for word in text.split(" "):
        offset = draw.textlength(text[:start], font=font)
        _, _, right, bottom = draw.textbbox((0, 0), word, font=font)
        canvas = Image.new("L", (int(right) + 8, int(bottom) + 8), 0)
        ImageDraw.Draw(canvas).text((4, 4), word, fill=255, font=font)
        columns = np.flatnonzero(np.asarray(canvas).max(axis=0) >= 128)
        extents.append((offset + float(columns[0]) - 4, offset + float(columns[-1]) + 1 - 4))
        start += len(word) + 1
    return extents


def even_split(text: str, first: float, last: float) -> list[tuple[float, float]]:
    """Words of `text` placed by an even split of [first, last] by characters."""
    per_char = (last - first) / len(text)
    extents = []
    start = 0
    for word in text.split(" "):
        extents.append((first + start * per_char, first + (start + len(word)) * per_char))
        start += len(word) + 1
    return extents


def check_words(lines: Sequence[RecognizedLine | None], truth: list[TruthLine]) -> None:
    """The structure of each line's words, their count against the truth, and their
    edges against the font's on the lines read exactly."""
    read = [line for line in lines if line is not None]
    assert read
    for line in read:
        assert line.words, line.text
        assert line.text == " ".join(word.text for word in line.words)
        assert all(word.text and " " not in word.text for word in line.words)
        assert all(0.0 <= word.confidence <= 1.0 for word in line.words)
        for word in line.words:
            assert all(inside(corner, line.box, OUTSIDE_TOLERANCE) for corner in word.box), (word, line.box)
        extents = word_extents(line)
        assert [start for start, _ in extents] == sorted(start for start, _ in extents), line.text
        for (_, end), (start, _) in pairwise(extents):
            assert end <= start + 1.0, (line.text, extents)

    read_words = sum(len(line.words) for line in read)
    truth_words = sum(len(line.text.split()) for line in truth)
    assert abs(read_words - truth_words) <= max(1, 0.02 * truth_words), (read_words, truth_words)

    by_text = {line.text: line.font for line in truth}
    exact = [line for line in read if line.text in by_text]
    assert len(exact) >= 0.8 * len(truth), [line.text for line in read]
    ours: list[float] = []
    split: list[float] = []
    for line in exact:
        found = word_extents(line)
        expected = font_extents(line.text, by_text[line.text])
        # Measured from the first word's start: the line's box has its own margin.
        origin, expected_origin = found[0][0], expected[0][0]
        for (start, end), (want_start, want_end) in zip(found, expected, strict=True):
            ours += [
                abs((start - origin) - (want_start - expected_origin)),
                abs((end - origin) - (want_end - expected_origin)),
            ]
        for (start, end), (want_start, want_end) in zip(
            even_split(line.text, found[0][0], found[-1][1]), expected, strict=True
        ):
            split += [
                abs((start - origin) - (want_start - expected_origin)),
                abs((end - origin) - (want_end - expected_origin)),
            ]
    assert float(np.mean(ours)) <= MEAN_EDGE_ERROR, f"mean edge error {np.mean(ours):.1f} px"
    # An even split of the line by characters would be several times further off.
    assert float(np.mean(ours)) * 3 < float(np.mean(split)), (np.mean(ours), np.mean(split))
    # Widths follow the words' lengths as the font draws them.
    widths = [end - start for line in exact for start, end in word_extents(line)]
    drawn = [end - start for line in exact for start, end in font_extents(line.text, by_text[line.text])]
    assert float(np.corrcoef(widths, drawn)[0, 1]) > 0.98


def test_pp_ocr_words_are_where_the_font_put_them(
    rapid_engine: RapidOcrEngine, dense_page: tuple[RgbImage, list[TruthLine]]
) -> None:
    pixels, truth = dense_page
    lines = rapid_engine.read_batch(pixels, rapid_engine.detect(pixels))
    check_words(lines, truth)


def test_tesseract_words_of_an_english_page_are_where_the_font_put_them(
    rapid_engine: RapidOcrEngine, dense_page: tuple[RgbImage, list[TruthLine]]
) -> None:
    # The route OCR_RECOGNIZER=tesseract takes for every line (TesseractLineEngine).
    if "eng" not in rapid_engine.tesseract_models():
        pytest.skip(f"Tesseract's eng.traineddata is not installed ({INSTALL_HINT})")
    pixels, truth = dense_page
    lines = rapid_engine.read_batch_in(pixels, rapid_engine.detect(pixels), "eng")
    check_words(lines, truth)


def test_tesseract_words_of_a_vietnamese_page_are_where_the_font_put_them(
    rapid_engine: RapidOcrEngine,
) -> None:
    page = language_page_in("vi", "vie")
    pixels = np.asarray(page.image.convert("RGB"))
    lines = rapid_engine.read_batch_in(pixels, rapid_engine.detect(pixels), "vie+eng")
    check_words(lines, language_truth(page))


def test_korean_words_are_eojeol_as_written_between_spaces(rapid_engine: RapidOcrEngine) -> None:
    page = language_page_in("ko", "kor")
    pixels = np.asarray(page.image.convert("RGB"))
    lines = rapid_engine.read_batch_in(pixels, rapid_engine.detect(pixels), "kor+eng")
    check_words(lines, language_truth(page))


@pytest.mark.parametrize("route", ["pp-ocr", "tesseract"])
def test_words_of_a_slanted_page_follow_their_lines(rapid_engine: RapidOcrEngine, route: str) -> None:
    page = language_page_in("vi", "vie")
    degrees = 3.0
    turned = page.image.convert("RGB").rotate(
        degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(230, 230, 230)
    )
    pixels = np.asarray(turned)
    regions = rapid_engine.detect(pixels)
    if route == "pp-ocr":
        lines = rapid_engine.read_batch(pixels, regions)
    else:
        lines = rapid_engine.read_batch_in(pixels, regions, "vie+eng")
    read = [line for line in lines if line is not None]
    assert len(read) == len(page.truth_lines)
    words = [word for line in read for word in line.words]
    assert sum(len(line.split()) for line in page.truth_lines) - len(words) in (-1, 0, 1)
    for line in read:
        assert line.text == " ".join(word.text for word in line.words)
        for word in line.words:
            assert all(inside(corner, line.box, OUTSIDE_TOLERANCE) for corner in word.box)
            # Turned counter-clockwise on the page: the top edge rises to the right.
            (x0, y0), (x1, y1) = word.box[0], word.box[1]
            assert math.degrees(math.atan2(y0 - y1, x1 - x0)) == pytest.approx(degrees, abs=0.5), word
