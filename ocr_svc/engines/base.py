"""The small interface every OCR engine implements: find the lines, then read them, one by
one or (engines that can) a batch at a time, so the pipeline can stream each line as soon
as it is read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

# Decoded pixels: height x width x 3, RGB, uint8.
RgbImage = npt.NDArray[np.uint8]
Point = tuple[float, float]
# Four corners, clockwise from top-left, in pixels of the original image.
Quad = tuple[Point, Point, Point, Point]


@dataclass(frozen=True)
class TextRegion:
    """Where one line of text is. `parts` are the engine's own pieces of the line (the
    keras engine detects words and reads a line word by word); engines that detect whole
    lines leave it empty. `layout_line`: one whole line as Tesseract's layout analysis cut
    it, so Tesseract reads it as a raw line without looking for lines in it again."""

    box: Quad
    parts: tuple[Quad, ...] = field(default=())
    layout_line: bool = False


@dataclass(frozen=True)
class RecognizedWord:
    """One word of a line: its text, how sure the engine is (0..1) and its box in page
    pixels, as the engine located it (never an even split of the line's box)."""

    text: str
    confidence: float
    box: Quad


@dataclass(frozen=True)
class RecognizedLine:
    """The text of one region and how sure the engine is (0..1); `words` in reading
    order, their texts joined with single spaces making `text` (empty from an engine that
    does not locate words)."""

    text: str
    confidence: float
    box: Quad
    words: tuple[RecognizedWord, ...] = field(default=())


class EngineUnavailable(Exception):
    """The engine cannot be loaded (missing weights, missing package). The message says what
    to do about it; the service refuses to start."""


class OcrEngine(Protocol):
    """An OCR engine. `load` runs once at start-up; `detect` and `read` are called from
    worker threads, possibly concurrently, so implementations must be thread-safe."""

    @property
    def name(self) -> str: ...

    def load(self) -> None:
        """Load the models. Raises `EngineUnavailable`."""

    def detect(self, image: RgbImage) -> list[TextRegion]:
        """The text lines of `image`, in any order (the pipeline puts them in reading
        order, `ocr_svc.layout`)."""
        ...

    def read(self, image: RgbImage, region: TextRegion) -> RecognizedLine | None:
        """The text in `region`, or None when nothing legible is there."""
        ...


@runtime_checkable
class BatchReader(Protocol):
    """An engine that also reads several regions in one call, faster per line than one by
    one. Thread-safe like `read`: the pipeline may run batches of one image in parallel."""

    def read_batch(self, image: RgbImage, regions: Sequence[TextRegion]) -> list[RecognizedLine | None]:
        """`read` of each region, in the order given."""
        ...


@runtime_checkable
class SpreadDetector(Protocol):
    """An engine whose detection of one image can use the cores of several engine calls
    at once (more inference threads in one call). Thread-safe like `detect`."""

    def detect_spread(self, image: RgbImage, calls: int) -> list[TextRegion]:
        """`detect`, on the cores of `calls` engine calls (`calls` >= 1)."""
        ...


@runtime_checkable
class LayoutDetector(Protocol):
    """An engine that can also find a page's lines by Tesseract's layout analysis, cheaper
    than its own detector on printed pages (`ocr_svc.engines.tesseract_layout`).
    Thread-safe like `detect`."""

    def layout_available(self) -> bool:
        """Whether `detect_by_layout` can run here (tesserocr and the English model);
        known before `load`."""
        ...

    def detect_by_layout(self, image: RgbImage, *, join_glyphs: bool = False) -> list[TextRegion]:
        """The text lines of `image` by Tesseract's layout analysis, in any order;
        `join_glyphs`: on the page with each character's strokes joined first (Hangul)."""
        ...


@runtime_checkable
class LanguageReader(Protocol):
    """An engine that also reads lines in other languages than its own recogniser's, with
    Tesseract's models (`ocr_svc.languages` decides which language goes where)."""

    def tesseract_models(self) -> frozenset[str]:
        """Tesseract's models installed (`{"eng", "vie", ...}`); known before `load`."""
        ...

    def read_batch_in(
        self,
        image: RgbImage,
        regions: Sequence[TextRegion],
        languages: str,
        retry_with: str | None = None,
    ) -> list[RecognizedLine | None]:
        """`read` of each region by Tesseract in `languages` (`"vie+eng"`), in the order
        given; a line with a word read badly, again in `retry_with` (`"kor+eng"`)."""
        ...


def quad_from_array(points: npt.NDArray[Any]) -> Quad:
    """A `Quad` from a 4x2 array of corners."""
    p = [(float(x), float(y)) for x, y in np.asarray(points, dtype=np.float64).reshape(4, 2)]
    return (p[0], p[1], p[2], p[3])


def quad_to_array(quad: Quad) -> npt.NDArray[np.float32]:
    """A 4x2 float32 array of the corners of `quad` (what OpenCV wants)."""
    return np.array(quad, dtype=np.float32)


def bounding_quad(quads: tuple[Quad, ...] | list[Quad]) -> Quad:
    """The axis-aligned rectangle around `quads`."""
    xs = [x for quad in quads for x, _ in quad]
    ys = [y for quad in quads for _, y in quad]
    left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def pad_bottom_right(image: RgbImage, min_height: int, min_width: int) -> RgbImage:
    """`image` extended at the bottom and right to at least min_height x min_width, filled
    with the median colour of its border (the page colour, usually). Pixel coordinates of
    the original stay the same, so boxes found in the result map back unchanged."""
    height, width = image.shape[:2]
    if height >= min_height and width >= min_width:
        return image
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    fill = np.median(border, axis=0).astype(np.uint8)
    padded = np.empty((max(height, min_height), max(width, min_width), 3), dtype=np.uint8)
    padded[...] = fill
    padded[:height, :width] = image
    return padded


def clip_quad(quad: Quad, width: int, height: int) -> Quad:
    """`quad` with its corners moved inside a width x height image."""
    p = [(min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))) for x, y in quad]
    return (p[0], p[1], p[2], p[3])
