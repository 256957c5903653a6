"""Text lines found by Tesseract's page layout analysis, the lines detector of printed pages
(`ocr_svc.languages` routes them here; OCR_DETECTOR says when).

Why: on a printed page PP-OCR's DB detector is the largest cost this service adds over
Tesseract's own CLI, 0.5-0.8 s of CPU a page at 960 px, where Tesseract's layout analysis
(Otsu threshold, connected components, tab stops and column partitions, text lines: the
CLI's `-psm 3` without recognition) finds the same lines in 0.05-0.25 s on the page at
half its resolution (docs/ocr.md, "Finding the lines").

Half its resolution: the page is shrunk so that its long side is at most
`LAYOUT_MAX_SIDE` (a Letter page at 300 dpi to 150 dpi). Measured on the generated magazine
pages, at full resolution the layout merged lines across narrow gutters (CER 0.008-0.088);
at half it kept the columns apart (0.002-0.014, PP-OCR's detector 0.003-0.008), and it is
four times cheaper. At a third it began to lose whole columns (CER up to 0.52).

Hangul: a syllable is several strokes apart (its jamo), which Tesseract's layout takes for
specks and separate characters: it cut the lines of a Korean page between syllables and lost
most of them (CER 0.587). With `join_glyphs` the page is binarised (Otsu) and closed with a
`JOIN_KERNEL` square first, so that each syllable is one blob, and the layout finds its
lines whole. Two more things make that hold on pages of columns and of small type:
- Tesseract is told the resolution of the page it sees (`ASSUMED_DPI` times the shrink).
  Left to its default (70 dpi, when an image carries none), any ink 17 px long is long
  enough for a rule, and Hangul, whose syllables are all one width, lines its vertical
  strokes up from line to line: Tesseract found "rules" down a column and cut its lines
  there, and took the column of first syllables for a block of vertical text (two columns
  of 46 px type: CER 0.056 -> 0.005).
- The page is shrunk less when its type is small: to at least `JOINED_TEXT_PX` of text
  height (the 90th percentile of the ink's blob heights, a syllable's full height), so
  that the closing joins the strokes of a syllable and not the lines above and below
  (25 px type at 1.2 leading was closed into one blob a paragraph, CER 0.80 -> 0.01).
Measured on generated Korean pages of one to three columns, 20-60 px type at 1.2-1.6
leading: CER 0.000-0.026, where PP-OCR's detector read 0.000-0.83 (it loses small type
at tight leading) in five to ten times the time (docs/ocr.md, "Finding the lines").

Pages turned a quarter it does not read (it finds no lines; the pipeline then asks OSD).
Each returned box is Tesseract's text line, widened by `LINE_PADDING` of its height on every
side (`JOINED_LINE_PADDING` for joined glyphs) so that the recogniser sees the whole glyphs.
The lines are not ordered here: the pipeline orders every detector's lines the same way
(`ocr_svc.layout`).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ocr_svc.engines.base import EngineUnavailable, RgbImage, TextRegion, clip_quad
from ocr_svc.engines.tesseract_reader import ENGLISH, set_grey_image

# The long side the layout analysis sees, in pixels: pages larger than this are shrunk.
LAYOUT_MAX_SIDE = 1650
# Each line's box grown by this share of its height on every side before it is read.
LINE_PADDING = 0.15
# A gap between two words of a line wider than this many times the line's height is a
# gutter: the line is cut there (a word space is a quarter to a half of it).
COLUMN_GAP = 1.0
# Joined glyphs: the side of the square (pixels of the shrunk page, 150 dpi for Letter at
# 300) that closes the gaps between a Hangul syllable's strokes; 3 to 7 found the same lines
# of a Korean page, no closing found a third of them.
JOIN_KERNEL = 3
# The text height (pixels) a page is shrunk to no less than before its glyphs are joined:
# at the 3 px kernel 20 and 24 found the same lines of small type, plain shrinking (to 12 px
# type) closed the lines together.
JOINED_TEXT_PX = 20.0
# A blob shorter than this (pixels) is a speck or a dot, not a measure of the text's height.
MIN_BLOB_PX = 3
# The resolution a page is taken to have been scanned or rendered at (OCR_PDF_DPI's
# default): the layout is told the shrunk page's share of it when glyphs are joined.
ASSUMED_DPI = 300
# The padding of lines found on joined glyphs: Tesseract's Korean model read 8 pages at CER
# median 0.000 with 0.25 of the line's height (0.15: 0.032; 0.30: 0.000, max 0.021).
JOINED_LINE_PADDING = 0.25
# A word belongs to a row of its line when it overlaps the row vertically by this share of
# the lower of their heights.
ROW_OVERLAP = 0.5
# A word this many times as tall as its line's median word may be two rows Tesseract took
# for one word (a paragraph's one-word last line under the first word of the line above):
# it is cut at the blank rows of ink inside it, into pieces at least `MIN_STACKED_PIECE` of
# the median word's height (a diacritic over a letter is less, and stays with it).
STACKED_HEIGHT = 1.6
MIN_STACKED_PIECE = 0.4


class TesseractLayout:
    """`lines(image)`: the text lines of a page by Tesseract's layout analysis
    (`PSM.AUTO_ONLY`, no recognition). Thread-safe: one handle per thread."""

    def __init__(self, tessdata: Path) -> None:
        self.tessdata = tessdata
        self._local = threading.local()

    def handle(self) -> Any:
        """This thread's handle, opened on first use (`EngineUnavailable` when Tesseract
        cannot load)."""
        handle = getattr(self._local, "handle", None)
        if handle is not None:
            return handle
        # Before libtesseract starts OpenMP: the pipeline's threads are the parallelism.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        import tesserocr

        try:
            handle = tesserocr.PyTessBaseAPI(
                path=f"{self.tessdata}{os.sep}",
                lang=ENGLISH,  # the layout uses no model, but a handle needs one
                psm=tesserocr.PSM.AUTO_ONLY,
                oem=tesserocr.OEM.LSTM_ONLY,
            )
        except RuntimeError as exc:
            raise EngineUnavailable(
                f"Tesseract cannot start its layout analysis from {self.tessdata}: {exc}"
            ) from exc
        self._local.handle = handle
        return handle

    def lines(self, image: RgbImage, *, join_glyphs: bool = False) -> list[TextRegion]:
        """The text lines of `image` (RGB), each an axis-aligned box in its pixels;
        `join_glyphs`: found on the page with each character's strokes joined (Hangul)."""
        import cv2

        height, width = image.shape[:2]
        page = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
        scale = min(1.0, LAYOUT_MAX_SIDE / max(height, width))
        grey = _shrunk(page, scale)
        padding = LINE_PADDING
        if join_glyphs:
            ink = _ink(grey)
            text_px = ink_height(ink)
            if 0 < text_px < JOINED_TEXT_PX and scale < 1.0:
                scale = min(1.0, scale * JOINED_TEXT_PX / text_px)
                ink = _ink(_shrunk(page, scale))
            grey = _joined(ink)
            padding = JOINED_LINE_PADDING
        handle = self.handle()
        set_grey_image(handle, grey)
        if join_glyphs:
            handle.SetSourceResolution(max(1, round(ASSUMED_DPI * scale)))
        try:
            lines = _text_lines(handle.AnalyseLayout())
        finally:
            handle.Clear()
        found = _split_at_gaps([_unstacked(words, grey) for words in lines])
        regions = []
        for left, top, right, bottom in found:
            left, top, right, bottom = left / scale, top / scale, right / scale, bottom / scale
            pad = padding * (bottom - top)
            # On whole pixels, outwards: such a box is cut from the page as it is, not
            # resampled (`CropGeometry.crop`).
            left, top = float(math.floor(left - pad)), float(math.floor(top - pad))
            right, bottom = float(math.ceil(right + pad)), float(math.ceil(bottom + pad))
            quad = ((left, top), (right, top), (right, bottom), (left, bottom))
            regions.append(TextRegion(box=clip_quad(quad, width, height), layout_line=True))
        return regions


Box = tuple[float, float, float, float]


def _shrunk(grey: npt.NDArray[np.uint8], scale: float) -> npt.NDArray[np.uint8]:
    import cv2

    if scale >= 1.0:
        return grey
    height, width = grey.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _ink(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """`grey` binarised (Otsu): ink 255, paper 0."""
    import cv2

    _, ink = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return np.asarray(ink, dtype=np.uint8)


def ink_height(ink: npt.NDArray[np.uint8]) -> float:
    """The text's height in `ink` (binarised, ink 255): the 90th percentile of its blobs'
    heights (a Hangul syllable's jamo are blobs of their own, its vertical strokes span
    it; 0.93-0.96 of the type size on pages of 20-60 px type), 0 without blobs."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    heights = stats[1:count, cv2.CC_STAT_HEIGHT]
    heights = heights[heights >= MIN_BLOB_PX]
    return float(np.percentile(heights, 90)) if heights.size else 0.0


def _joined(ink: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The page (black on white) of `ink` with each character's strokes joined by a
    morphological closing."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (JOIN_KERNEL, JOIN_KERNEL))
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, kernel)
    return np.asarray(255 - closed, dtype=np.uint8)


def _text_lines(iterator: Any) -> list[list[Box]]:
    """The words' boxes (left, top, right, bottom) of each text line in the blocks of text
    that a layout iterator (`AnalyseLayout`) holds; figures, rules and noise are skipped."""
    import tesserocr

    kinds = tesserocr.PT
    text_blocks = {
        kinds.FLOWING_TEXT,
        kinds.HEADING_TEXT,
        kinds.PULLOUT_TEXT,
        kinds.CAPTION_TEXT,
        kinds.TABLE,
        kinds.EQUATION,
        kinds.INLINE_EQUATION,
        kinds.VERTICAL_TEXT,
    }
    lines: list[list[Box]] = []
    if iterator is None:
        return lines
    iterator.Begin()
    while True:
        if iterator.BlockType() in text_blocks:
            if iterator.IsAtBeginningOf(tesserocr.RIL.TEXTLINE) or not lines:
                lines.append([])
            box = iterator.BoundingBox(tesserocr.RIL.WORD)
            if box is not None:
                lines[-1].append(tuple(float(v) for v in box))  # type: ignore[arg-type]
        if not iterator.Next(tesserocr.RIL.WORD):
            break
    return [words for words in lines if words]


def _unstacked(words: list[Box], grey: npt.NDArray[np.uint8]) -> list[Box]:
    """The words of one line, a word `STACKED_HEIGHT` times as tall as the line's median
    word cut into its rows of ink (`grey`: the page the layout saw)."""
    if len(words) < 2:
        return words
    typical = float(np.median([b[3] - b[1] for b in words]))
    out: list[Box] = []
    for word in words:
        if word[3] - word[1] > STACKED_HEIGHT * typical:
            out.extend(_cut_at_blank_rows(word, grey, MIN_STACKED_PIECE * typical))
        else:
            out.append(word)
    return out


def _cut_at_blank_rows(word: Box, grey: npt.NDArray[np.uint8], min_piece: float) -> list[Box]:
    """`word` cut at the rows with no ink inside it (Otsu on its pixels), into pieces of at
    least `min_piece` pixels high (a shorter one joins the piece before it); the word
    itself when it has no such row."""
    import cv2

    left, top, right, bottom = (round(v) for v in word)
    patch = np.ascontiguousarray(grey[max(top, 0) : bottom, max(left, 0) : right])
    if patch.size == 0:
        return [word]
    _, ink = cv2.threshold(patch, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    inked = np.flatnonzero(ink.any(axis=1))
    if inked.size == 0:
        return [word]
    pieces: list[list[int]] = []
    for row in inked.tolist():
        # A row right under the piece, or any row after a piece still too short, extends it.
        if pieces and (row == pieces[-1][1] or pieces[-1][1] - pieces[-1][0] < min_piece):
            pieces[-1][1] = row + 1
        else:
            pieces.append([row, row + 1])
    if len(pieces) > 1 and pieces[-1][1] - pieces[-1][0] < min_piece:
        last = pieces.pop()
        pieces[-1][1] = last[1]
    if len(pieces) < 2:
        return [word]
    origin = max(top, 0)
    return [(word[0], float(origin + start), word[2], float(origin + end)) for start, end in pieces]


def _split_at_gaps(lines: list[list[Box]]) -> list[Box]:
    """Each line's box, or its pieces: first its rows, where its words do not share one
    height (beside a heading in a larger font Tesseract may take two lines of a column for
    one), then, in each row, where a gap between two words is wider than `COLUMN_GAP` times
    the row's height: with few lines in a column (a short page, a caption beside a column,
    a line beside a figure) Tesseract may not see the gutter and runs a line across it."""
    boxes: list[Box] = []
    for words in lines:
        for row in _rows(words):
            row_height = max(b[3] for b in row) - min(b[1] for b in row)
            piece = [row[0]]
            for word in row[1:]:
                if word[0] - max(b[2] for b in piece) > COLUMN_GAP * row_height:
                    boxes.append(_bounding(piece))
                    piece = []
                piece.append(word)
            boxes.append(_bounding(piece))
    return boxes


def _rows(words: list[Box]) -> list[list[Box]]:
    """The words of one Tesseract line grouped into rows, each left to right: a word joins
    the first row it overlaps vertically by at least `ROW_OVERLAP` of the lower of the two
    heights, where a row spans from its words' median top to their median bottom (a comma,
    a word in small letters or a descender shifts a word, never by that much; a taller word
    beside the row, a heading's, does not stretch the row over the next one)."""
    rows: list[list[Box]] = []
    for word in sorted(words, key=lambda b: (b[1] + b[3]) / 2):
        for row in rows:
            top = float(np.median([b[1] for b in row]))
            bottom = float(np.median([b[3] for b in row]))
            overlap = min(bottom, word[3]) - max(top, word[1])
            if overlap >= ROW_OVERLAP * min(bottom - top, word[3] - word[1]):
                row.append(word)
                break
        else:
            rows.append([word])
    return [sorted(row) for row in rows]


def _bounding(words: list[Box]) -> Box:
    return (
        min(b[0] for b in words),
        min(b[1] for b in words),
        max(b[2] for b in words),
        max(b[3] for b in words),
    )
