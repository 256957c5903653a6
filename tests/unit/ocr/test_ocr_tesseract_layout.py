"""Lines found by Tesseract's layout analysis: a line run across a gutter is cut there, word
spaces are not; on a real page every line stays in its column, in the page's own pixels,
padded, and marked to be read as a raw line."""

from __future__ import annotations

import numpy as np
import pytest

from harness.language_pages import FontMissing, LanguagePage, columns_page, language_page
from harness.pages import PageSpec, render_page
from ocr_svc.engines.tesseract_layout import LINE_PADDING, TesseractLayout, _split_at_gaps, _unstacked
from ocr_svc.engines.tesseract_reader import installed_models


@pytest.fixture(scope="module")
def layout() -> TesseractLayout:
    directory, _ = installed_models(None)
    if directory is None:
        pytest.skip("tesserocr or eng.traineddata is not installed (Debian: tesseract-ocr-eng)")
    return TesseractLayout(directory)


def test_a_line_run_across_a_gutter_is_cut_in_two() -> None:
    # Two columns' lines, 40 px high, 75 px apart: Tesseract saw one line.
    words = [
        (0.0, 0.0, 100.0, 40.0),
        (112.0, 2.0, 300.0, 40.0),
        (375.0, 0.0, 500.0, 38.0),
        (510.0, 1.0, 700.0, 40.0),
    ]
    assert _split_at_gaps([words]) == [(0.0, 0.0, 300.0, 40.0), (375.0, 0.0, 700.0, 40.0)]


def test_word_spaces_do_not_cut_a_line() -> None:
    # A loose justified line: spaces up to three quarters of its height.
    words = [(0.0, 0.0, 80.0, 40.0), (110.0, 0.0, 200.0, 40.0), (230.0, 5.0, 260.0, 40.0)]
    assert _split_at_gaps([words[::-1]]) == [(0.0, 0.0, 260.0, 40.0)]


def test_words_of_two_rows_in_one_tesseract_line_are_two_lines() -> None:
    # Beside a heading in a larger font, Tesseract took two lines of the first column and
    # the heading for one line (a generated magazine page, seed 1): rows first, then gaps.
    words = [
        (0.0, 0.0, 120.0, 40.0),
        (130.0, 2.0, 300.0, 40.0),
        (0.0, 49.0, 200.0, 89.0),
        (210.0, 50.0, 280.0, 89.0),
        (420.0, 0.0, 1400.0, 90.0),  # the heading's words, twice as high
    ]
    assert sorted(_split_at_gaps([words])) == [
        (0.0, 0.0, 300.0, 40.0),
        (0.0, 49.0, 280.0, 89.0),
        (420.0, 0.0, 1400.0, 90.0),
    ]


def test_a_word_holding_two_rows_of_ink_is_cut_between_them() -> None:
    # A caption's one-word last line under its first word: Tesseract gave one word box two
    # rows high, and the line read as noise. A heading's tall word (ink all the way down)
    # and a word with a mark above it are left whole.
    page = np.full((100, 1000), 255, dtype=np.uint8)
    words = [
        (0.0, 10.0, 60.0, 60.0),  # the first word, and under it the last line's one word
        (70.0, 10.0, 200.0, 30.0),
        (210.0, 10.0, 300.0, 30.0),
        (310.0, 10.0, 400.0, 30.0),
        (420.0, 10.0, 520.0, 60.0),  # a tall word with ink in every row
        (530.0, 2.0, 600.0, 30.0),  # a mark 5 px above the word's letters
    ]
    for left, top, right, bottom in words[1:5]:
        page[int(top) : int(bottom), int(left) : int(right)] = 0
    page[10:30, 0:60] = 0
    page[40:60, 0:30] = 0
    page[2:5, 540:550] = 0
    page[10:30, 530:600] = 0
    cut = _unstacked(words, page)
    assert cut == [(0.0, 10.0, 60.0, 30.0), (0.0, 40.0, 60.0, 60.0), *words[1:]]
    # The last line's word is a line of its own.
    assert (0.0, 40.0, 60.0, 60.0) in _split_at_gaps([cut])


def test_the_lines_of_a_short_two_column_page_stay_in_their_columns(layout: TesseractLayout) -> None:
    # Two lines a column: too few for Tesseract to see the gutter by itself.
    spec = PageSpec(columns=2, seed=4, height=1000, lines_per_column=2)
    pixels = np.asarray(render_page(spec).image.convert("RGB"))
    regions = layout.lines(pixels)
    assert all(region.layout_line for region in regions)
    # The heading (96 px) spans the page; each body line (42 px) lies in one column.
    body = [r.box for r in regions if r.box[2][1] - r.box[0][1] < 1.5 * spec.body_px * (1 + 2 * LINE_PADDING)]
    middle = spec.width / 2
    assert len(body) == 4
    assert all(right < middle or left > middle for (left, _), (right, _), _, _ in body)


def test_a_line_box_holds_the_line_with_some_room_in_the_pages_own_pixels(layout: TesseractLayout) -> None:
    # 3000 px wide: found at about half that, mapped back.
    page = render_page(PageSpec(columns=1, seed=2, width=3000, height=900, lines_per_column=3)).image
    pixels = np.asarray(page.convert("RGB"))
    ink_rows = np.flatnonzero((pixels[:, :, 0] < 128).any(axis=1))
    ink_columns = np.flatnonzero((pixels[:, :, 0] < 128).any(axis=0))
    boxes = [r.box for r in layout.lines(pixels)]
    assert boxes
    top, bottom = min(b[0][1] for b in boxes), max(b[2][1] for b in boxes)
    left, right = min(b[0][0] for b in boxes), max(b[1][0] for b in boxes)
    # The lines cover the ink, with at most their padding (and rounding) beyond it.
    room = LINE_PADDING * max(b[2][1] - b[0][1] for b in boxes) + 4
    assert top <= ink_rows[0] <= top + room
    assert bottom - room <= ink_rows[-1] <= bottom
    assert left <= ink_columns[0] <= left + room
    assert right - room <= ink_columns[-1] <= right


def test_hangul_lines_are_found_whole_on_joined_glyphs(layout: TesseractLayout) -> None:
    # A syllable's strokes apart, Tesseract's layout cut the page's 4 lines between
    # syllables and lost most of them; with the strokes joined it finds each line whole.
    try:
        page = language_page("ko")
    except FontMissing as exc:
        pytest.skip(f"{exc} (`python scripts/debian_tools.py test` installs it)")
    pixels = np.asarray(page.image.convert("RGB"))
    apart = [r.box for r in layout.lines(pixels)]
    joined = sorted((r.box for r in layout.lines(pixels, join_glyphs=True)), key=lambda box: box[0][1])
    assert len(joined) == len(page.truth_lines) == 4
    # Three full lines (the text is 1950 px wide, ragged right) and the paragraph's last.
    widths = [box[1][0] - box[0][0] for box in joined]
    assert all(width > 1750 for width in widths[:3]), widths
    assert sum(box[1][0] - box[0][0] for box in apart) < 0.5 * sum(widths)


def korean_columns(columns: int, text_px: int, leading: float) -> LanguagePage:
    try:
        return columns_page("ko", columns=columns, text_px=text_px, leading=leading)
    except FontMissing as exc:
        pytest.skip(f"{exc} (`python scripts/debian_tools.py test` installs it)")


def test_hangul_lines_of_two_columns_are_found_whole_each_in_its_column(layout: TesseractLayout) -> None:
    # Hangul's syllables are all one width, so their vertical strokes line up from line to
    # line: taken at Tesseract's default 70 dpi, those were "rules" that cut every line of
    # a column in two, and the column of first syllables a block of vertical text.
    page = korean_columns(2, 46, 1.6)
    pixels = np.asarray(page.image.convert("RGB"))
    boxes = [r.box for r in layout.lines(pixels, join_glyphs=True)]
    assert len(boxes) == len(page.truth_lines) == 21
    gutter = pixels.shape[1] / 2
    for (left, _), (right, _), _, _ in boxes:
        assert right < gutter or left > gutter
        # The shortest line of a column is a paragraph's last, still wider than 10 syllables.
        assert right - left > 10 * 46


@pytest.mark.parametrize("columns", [2, 3])
def test_small_hangul_at_tight_leading_is_found_line_by_line(layout: TesseractLayout, columns: int) -> None:
    # 25 px type at 1.2 leading: shrunk to 150 dpi, the closing that joins a syllable's
    # strokes joined the lines too, and a paragraph came out as one blob (CER 0.80).
    page = korean_columns(columns, 25, 1.2)
    pixels = np.asarray(page.image.convert("RGB"))
    boxes = [r.box for r in layout.lines(pixels, join_glyphs=True)]
    assert len(boxes) >= len(page.truth_lines)
    pitch = 25 * 1.2
    assert all(bottom - top < 2 * pitch for (_, top), _, (_, bottom), _ in boxes)


def test_a_blank_page_has_no_lines(layout: TesseractLayout) -> None:
    assert layout.lines(np.full((1200, 900, 3), 255, dtype=np.uint8)) == []
