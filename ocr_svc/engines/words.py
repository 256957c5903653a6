"""Words of a recognised line, located by the engine, and their boxes on the page.

A line is read from a crop: the line's (possibly slanted) quad warped upright into a
rectangle (`CropGeometry`, as rapidocr's `get_rotate_crop_image` cuts it). The recogniser
locates each word in the crop's pixels:

- PP-OCR (`locate_ctc_words`): its CTC output has one time step per 8 pixels of the
  recogniser's input; each character is emitted at the steps where it stands, so a word
  spans its first to its last character's steps, widened by half a character pitch on
  each side (`ctc_crop_words`: PaddleOCR's and rapidocr's `return_word_box` method).
  `fit_to_ink` then moves each edge onto the ink of the crop: the cut between two words
  goes in the widest blank gap between the last character of one and the first of the
  next, and each word keeps the ink on its side of the cuts. On generated pages the
  edges land within a pixel of where the font drew them (tests/integration/ocr/
  test_words_engines.py), for about 0.2 ms of CPU a line (recognition is about 30 ms).
- Tesseract: its own word iterator (`ocr_svc.engines.tesseract_reader`).

`CropGeometry.quad` maps a rectangle of the crop back through the crop's perspective
transform, so a word's box follows the slant of its line and stays inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from ocr_svc.engines.base import Point, Quad, RecognizedLine, RecognizedWord

# rapidocr turns a crop at least this much taller than wide a quarter turn (np.rot90).
VERTICAL_RATIO = 1.5
# Pixels of the recogniser's input per CTC time step of the PP-OCR models (their
# backbone halves the width three times).
CTC_STRIDE = 8
# Ink pixels a column of a crop needs to count as ink (scanner specks have fewer).
MIN_INK_PIXELS = 3


@dataclass(frozen=True)
class CropWord:
    """A word as the recogniser located it, in pixels of the crop it read."""

    text: str
    confidence: float
    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class CropReading:
    """What a recogniser read in one crop: the line's text and confidence (0..1), and its
    words in reading order (empty when it located none)."""

    text: str
    confidence: float
    words: tuple[CropWord, ...] = ()


@dataclass(frozen=True)
class CropGeometry:
    """How a line's crop was cut from the page: `forward` maps page pixels to the
    upright crop (`width` x `height`), before the quarter turn a tall crop gets
    (`rotated`). `to_page` and `quad` map crop pixels (of the crop as read, rotated or
    not) back to the page."""

    forward: npt.NDArray[np.float64]
    inverse: npt.NDArray[np.float64]
    width: int
    height: int
    rotated: bool

    @classmethod
    def of(cls, box: Quad) -> CropGeometry:
        """The geometry of the crop `get_rotate_crop_image` cuts for `box` (same size,
        same transform, same quarter turn)."""
        import cv2

        points = np.array(box, dtype=np.float32)
        width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
        height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
        upright = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
        forward = np.asarray(cv2.getPerspectiveTransform(points, upright), dtype=np.float64)
        inverse = np.asarray(cv2.getPerspectiveTransform(upright, points), dtype=np.float64)
        rotated = width > 0 and height / width >= VERTICAL_RATIO
        return cls(forward=forward, inverse=inverse, width=width, height=height, rotated=rotated)

    def crop(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The crop of `image` the recogniser reads, cut exactly as rapidocr's
        `get_rotate_crop_image` cuts it (bicubic, edges replicated, tall crops turned)."""
        import cv2

        offset = self._whole_pixel_offset(image.shape[1], image.shape[0])
        if offset is not None:
            # A box on whole pixels, upright, inside the page (Tesseract's layout lines): the
            # warp would return these very pixels (bicubic weights at whole pixels are 0, 1,
            # 0, 0), at about 40x the CPU (a tenth of reading a line).
            x, y = offset
            upright: npt.NDArray[np.uint8] = image[y : y + self.height, x : x + self.width].copy()
        else:
            upright = np.asarray(
                cv2.warpPerspective(
                    image,
                    self.forward,
                    (self.width, self.height),
                    borderMode=cv2.BORDER_REPLICATE,
                    flags=cv2.INTER_CUBIC,
                ),
                dtype=np.uint8,
            )
        return np.asarray(np.rot90(upright) if self.rotated else upright, dtype=np.uint8)

    def _whole_pixel_offset(self, image_width: int, image_height: int) -> tuple[int, int] | None:
        """(x, y) when `forward` only moves the page by whole pixels to (-x, -y) and the crop
        lies inside the page; else None."""
        x, y = -self.forward[0, 2], -self.forward[1, 2]
        shift = np.array([[1.0, 0.0, -round(x)], [0.0, 1.0, -round(y)], [0.0, 0.0, 1.0]])
        if not np.allclose(self.forward, shift, rtol=0.0, atol=1e-6):
            return None
        left, top = round(x), round(y)
        if left < 0 or top < 0 or left + self.width > image_width or top + self.height > image_height:
            return None
        return left, top

    @property
    def read_size(self) -> tuple[int, int]:
        """(width, height) of the crop as the recogniser gets it."""
        return (self.height, self.width) if self.rotated else (self.width, self.height)

    def to_page(self, x: float, y: float) -> Point:
        """The page point under (x, y) of the crop as read."""
        if self.rotated:
            # np.rot90 turns a quarter counter-clockwise: column x of the result was row x
            # of the upright crop, read from the right edge inwards.
            x, y = self.width - y, x
        u, v, w = self.inverse @ np.array([x, y, 1.0])
        return (float(u / w), float(v / w))

    def quad(self, left: float, top: float, right: float, bottom: float) -> Quad:
        """The page quad of a rectangle of the crop as read, clockwise from the corner where
        its text starts (top-left for upright text)."""
        return (
            self.to_page(left, top),
            self.to_page(right, top),
            self.to_page(right, bottom),
            self.to_page(left, bottom),
        )


def line_from_words(words: Sequence[RecognizedWord], confidence: float, box: Quad) -> RecognizedLine | None:
    """The line of `words` (None without any): its text their texts joined by single
    spaces, so that the line's text and its words always agree."""
    kept = tuple(word for word in words if word.text)
    if not kept:
        return None
    return RecognizedLine(
        text=" ".join(word.text for word in kept), confidence=confidence, box=box, words=kept
    )


def page_words(reading: CropReading, geometry: CropGeometry) -> tuple[RecognizedWord, ...]:
    """`reading`'s words in page pixels: each crop rectangle clipped to the crop, then
    mapped through `geometry`. Words without text are dropped; whitespace inside a word
    (no recogniser here puts any) becomes single spaces."""
    read_width, read_height = geometry.read_size
    words = []
    for word in reading.words:
        text = " ".join(word.text.split())
        if not text:
            continue
        left = min(max(word.left, 0.0), float(read_width))
        right = min(max(word.right, left), float(read_width))
        top = min(max(word.top, 0.0), float(read_height))
        bottom = min(max(word.bottom, top), float(read_height))
        words.append(
            RecognizedWord(
                text=text,
                confidence=min(max(word.confidence, 0.0), 1.0),
                box=geometry.quad(left, top, right, bottom),
            )
        )
    return tuple(words)


@dataclass(frozen=True)
class CtcLine:
    """A greedy CTC decoding: the text, the mean probability of the characters emitted
    (0 without any, as rapidocr scores a line) and the words, each with its characters'
    time steps."""

    text: str
    confidence: float
    words: tuple[tuple[str, float, int, int], ...]  # text, confidence, first step, last step
    pitch: float  # time steps from one character to the next within a word (median)


def ctc_decode(
    indices: npt.NDArray[np.int64], probabilities: npt.NDArray[np.float32], characters: Sequence[str]
) -> CtcLine:
    """Greedy CTC of one crop, as rapidocr's `CTCLabelDecode` reads it (repeats collapse,
    blank, class 0, drops out; `characters` is its list, blank first), and its words: runs
    of characters between whitespace, with the time step of each first and last character."""
    if indices.size == 0:
        return CtcLine(text="", confidence=0.0, words=(), pitch=0.0)
    keep = np.ones(indices.shape[0], dtype=bool)
    keep[1:] = indices[1:] != indices[:-1]
    keep &= indices != 0
    steps = np.flatnonzero(keep)
    chars = [characters[i] for i in indices[steps].tolist()]
    probs = probabilities[steps].astype(np.float64)
    confidence = float(probs.mean()) if steps.size else 0.0
    words: list[tuple[str, float, int, int]] = []
    gaps: list[int] = []
    start = -1
    for k, char in enumerate([*chars, " "]):
        if char.isspace():
            if start >= 0:
                words.append(
                    (
                        "".join(chars[start:k]),
                        float(probs[start:k].mean()),
                        int(steps[start]),
                        int(steps[k - 1]),
                    )
                )
                gaps.extend(np.diff(steps[start:k]).tolist())
                start = -1
        elif start < 0:
            start = k
    text = " ".join(word for word, _, _, _ in words)
    pitch = float(np.median(gaps)) if gaps else 0.0
    return CtcLine(text=text, confidence=confidence, words=tuple(words), pitch=pitch)


def ctc_crop_words(line: CtcLine, scale: float, width: float, height: float) -> list[CropWord]:
    """`line`'s words as rectangles of a crop `width` x `height`: from the centre of the
    first character's time step to that of the last, widened by half a character pitch
    each side; `scale` is crop pixels per pixel of the recogniser's input. Words that
    overlap are cut halfway."""
    if not line.words:
        return []
    step = CTC_STRIDE * scale
    # A line of one-character words has no pitch of its own: about a character per 3
    # steps is what the PP-OCR models emit for Latin text at their 48 px height.
    pitch = (line.pitch if line.pitch > 0 else 3.0) * step
    spans = [
        [max(0.0, (first + 0.5) * step - pitch / 2), min(width, (last + 0.5) * step + pitch / 2)]
        for _, _, first, last in line.words
    ]
    for before, after in pairwise(spans):
        if before[1] > after[0]:
            middle = (before[1] + after[0]) / 2
            before[1] = after[0] = middle
    return [
        CropWord(text=text, confidence=confidence, left=left, top=0.0, right=max(left, right), bottom=height)
        for (text, confidence, _, _), (left, right) in zip(line.words, spans, strict=True)
    ]


def ctc_centres(line: CtcLine, scale: float) -> list[tuple[float, float]]:
    """Per word of `line`, the crop x of the centres of its first and last characters'
    time steps (`scale`: crop pixels per pixel of the recogniser's input)."""
    step = CTC_STRIDE * scale
    return [((first + 0.5) * step, (last + 0.5) * step) for _, _, first, last in line.words]


def locate_ctc_words(line: CtcLine, crop: npt.NDArray[np.uint8], scale: float) -> list[CropWord]:
    """`line`'s words in `crop` (the crop the recogniser read): placed by their time steps
    (`ctc_crop_words`), then fitted to the crop's ink (`fit_to_ink`)."""
    height, width = crop.shape[:2]
    words = ctc_crop_words(line, scale, float(width), float(height))
    # A full stop is about a tenth of the line high: low lines count fewer pixels as ink.
    min_ink = min(MIN_INK_PIXELS, max(1, height // 10))
    return fit_to_ink(words, ink_columns(crop), ctc_centres(line, scale), min_ink)


def ink_columns(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """How many pixels of ink each column of `crop` (H x W x 3 BGR, or H x W grey) holds:
    pixels on the minority side of Otsu's threshold of the crop (dark text on light
    paper, or the reverse)."""
    import cv2

    if crop.size == 0:
        return np.zeros(crop.shape[1], dtype=np.int64)
    grey = crop if crop.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2GRAY)
    _, mask = cv2.threshold(np.ascontiguousarray(grey), 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    counts = np.asarray(cv2.reduce(mask, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S), dtype=np.int64).reshape(-1)
    # The minority side is the ink: light text on a dark band is counted the other way.
    if 2 * int(counts.sum()) > mask.size:
        counts = mask.shape[0] - counts
    return counts


def fit_to_ink(
    words: Sequence[CropWord],
    counts: npt.NDArray[np.int64],
    centres: Sequence[tuple[float, float]],
    min_ink: int = MIN_INK_PIXELS,
) -> list[CropWord]:
    """`words` with their left and right edges moved onto the ink (`counts`: ink pixels per
    column, `ink_columns`): consecutive words are cut in the middle of the widest blank run
    of columns between the centre of the last character of one and the centre of the
    first character of the next (`centres`: per word, those of its first and last
    character, crop pixels); each word then spans the ink between its cuts, within a
    character of where the recogniser put it. A column counts as ink with `min_ink` pixels
    of it (a lone speck of scanner noise has one or two), and a word's edge
    then follows the fainter columns touching it (a serif's tip). A word with no ink there
    keeps its place."""
    width = counts.shape[0]
    if not words or width == 0:
        return list(words)
    ink = counts >= min_ink
    faint = counts > 0
    cuts = [0.0]
    for (_, last), (first, _) in pairwise(centres):
        lo, hi = max(0, int(np.ceil(last))), min(width, int(np.floor(first)) + 1)
        cuts.append(_widest_gap_middle(ink, lo, hi) if hi > lo else (last + first) / 2)
    cuts.append(float(width))
    fitted = []
    for k, word in enumerate(words):
        slack = max(word.right - word.left, 1.0) / max(len(word.text), 1)
        lo = int(max(cuts[k], word.left - slack))
        hi = int(min(cuts[k + 1], word.right + slack))
        columns = np.flatnonzero(ink[max(lo, 0) : max(hi, 0)])
        if columns.size == 0:
            fitted.append(word)
            continue
        first, last = lo + int(columns[0]), lo + int(columns[-1])
        start, stop = max(lo, 0), min(hi, width)
        while first > start and faint[first - 1]:
            first -= 1
        while last + 1 < stop and faint[last + 1]:
            last += 1
        left, right = float(first), float(last + 1)
        fitted.append(
            CropWord(
                text=word.text,
                confidence=word.confidence,
                left=left,
                top=word.top,
                right=right,
                bottom=word.bottom,
            )
        )
    return fitted


def _widest_gap_middle(ink: npt.NDArray[np.bool_], lo: int, hi: int) -> float:
    """The middle of the widest run of blank columns in ink[lo:hi] (the middle of the span
    when every column there has ink)."""
    blank = ~ink[lo:hi]
    if not blank.any():
        return (lo + hi) / 2
    edges = np.diff(np.concatenate(([0], blank.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    widest = int(np.argmax(ends - starts))
    return lo + float(starts[widest] + ends[widest]) / 2
