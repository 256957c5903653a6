"""Pages turned upright before detection: the quarter turn (0/90/180/270) a page was
scanned with, and the few degrees it was scanned crooked.

- Orientation: Tesseract's orientation and script detection (OSD, `osd.traineddata`,
  through tesserocr) on the page downscaled so its long side is at most `OSD_LONG_SIDE`
  pixels: 8 pt body text of a 300 dpi Letter page stays about 22 px high, what OSD needs
  (measured: at 1500 px, dense 8.6 pt columns turned 90/180/270 came back unsure, "upright",
  in 5 of 6 cases; at 2200 px all 8 turns of a 2- and a 4-column page were found, and a call
  costs about the same, 0.25-0.35 s, since OSD's work follows the characters it tries, not the
  pixels). Its answer is trusted only above `MIN_OSD_CONFIDENCE`
  (an upright or turned page of text scores 17-22 on our generated pages, a wrong guess
  below 3); below, the page is left as it is.
- Skew: a projection-profile search (Postl's method, as Leptonica's `pixFindSkew` does) on
  the upright page downscaled to `SKEW_LONG_SIDE` pixels and binarised (dark = below 75 %
  of the mean grey): the dark pixels are projected onto the vertical axis along lines of
  slope tan(a) for a from -`MAX_SKEW` to +`MAX_SKEW` degrees, coarse (`COARSE_STEP`) then
  fine (`FINE_STEP`) around the best; the angle whose profile has the largest sum of
  squared differences between neighbouring rows (text lines lined up with the projection
  make sharp peaks and valleys) is the skew. It is corrected only when the peak is
  clearly better than no rotation at all, and by at least `MIN_SKEW`.

`skew` is the angle the page's lines were rotated counter-clockwise as scanned, in
degrees; the page is rotated by -skew (about its centre, the canvas grown to keep every
corner, new area the page's border colour) to straighten it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ocr_svc.engines.base import RgbImage
from ocr_svc.engines.tesseract_reader import set_grey_image

log = logging.getLogger(__name__)

OSD_LONG_SIDE = 2200
MIN_OSD_CONFIDENCE = 6.0
# For a page already suspected of not being upright (its lines read badly or stand on end),
# an answer of OSD from this confidence up to MIN_OSD_CONFIDENCE is tried: on a short page of
# Korean (4 lines) OSD found each quarter turn right at 4.0-5.1. The pipeline keeps such a
# turn only when the page reads better turned.
SUSPECT_OSD_CONFIDENCE = 3.0
# OSD needs some text to judge; a page with less dark area than this is left as it is.
MIN_INK_FRACTION = 0.002
SKEW_LONG_SIDE = 1000
MAX_SKEW = 10.0
COARSE_STEP = 0.5
FINE_STEP = 0.1
MIN_SKEW = 0.2
# The best angle's score must beat 0 degrees' by this factor to be corrected.
MIN_SKEW_GAIN = 1.05


@dataclass(frozen=True)
class Upright:
    """A page turned upright: its pixels, the clockwise quarter turn applied and the skew
    corrected (degrees, counter-clockwise positive)."""

    pixels: RgbImage
    rotation: int
    skew: float


class OrientationDetector:
    """Tesseract's OSD, one handle per thread (tesserocr handles are not thread-safe).
    Unavailable (no tesserocr or no osd.traineddata): every page is taken as upright."""

    def __init__(self, tessdata: Path | None) -> None:
        self.tessdata = (
            tessdata if tessdata is not None and (tessdata / "osd.traineddata").is_file() else None
        )
        self._local = threading.local()

    @property
    def available(self) -> bool:
        return self.tessdata is not None

    def _handle(self) -> Any:
        handle = getattr(self._local, "handle", None)
        if handle is None:
            os.environ.setdefault("OMP_THREAD_LIMIT", "1")
            import tesserocr

            # lang="osd": OSD_ONLY with another model aborts the process in Tesseract 5.
            handle = self._local.handle = tesserocr.PyTessBaseAPI(
                path=f"{self.tessdata}{os.sep}", lang="osd", psm=tesserocr.PSM.OSD_ONLY
            )
        return handle

    def clockwise_turn(self, grey: npt.NDArray[np.uint8]) -> int:
        """The clockwise quarter turn (0, 90, 180, 270) that stands the page `grey` upright;
        0 when OSD is unavailable, unsure (below `MIN_OSD_CONFIDENCE`), or the page has too
        little text."""
        turn, confidence = self.turn_and_confidence(grey)
        return turn if confidence >= MIN_OSD_CONFIDENCE else 0

    def turn_and_confidence(self, grey: npt.NDArray[np.uint8]) -> tuple[int, float]:
        """OSD's clockwise quarter turn for the page `grey` and its confidence (0.0 when OSD
        is unavailable or the page has too little text to judge)."""
        if self.tessdata is None:
            return 0, 0.0
        small = _downscaled(grey, OSD_LONG_SIDE)
        dark = small < 0.75 * float(small.mean())
        if dark.mean() < MIN_INK_FRACTION:
            return 0, 0.0
        binary = np.where(dark, 0, 255).astype(np.uint8)
        handle = self._handle()
        try:
            set_grey_image(handle, binary)
            result = handle.DetectOrientationScript()
        except RuntimeError:
            return 0, 0.0
        finally:
            handle.Clear()
        if not result:
            return 0, 0.0
        # OSD says how far the text is turned clockwise; turning it back is the rest of a circle.
        return (360 - int(result["orient_deg"])) % 360, float(result.get("orient_conf", 0.0))


def to_grey(pixels: RgbImage) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _downscaled(grey: npt.NDArray[np.uint8], long_side: int) -> npt.NDArray[np.uint8]:
    height, width = grey.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1.0:
        return grey
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def turn_clockwise(pixels: RgbImage, degrees: int) -> RgbImage:
    """`pixels` turned `degrees` (0, 90, 180, 270) clockwise."""
    if degrees % 360 == 0:
        return pixels
    return np.ascontiguousarray(np.rot90(pixels, k=-(degrees // 90)))


def find_skew(grey: npt.NDArray[np.uint8]) -> float:
    """The skew of the page `grey` (degrees its lines rise counter-clockwise, within
    +-`MAX_SKEW`), 0.0 when no angle stands out: the projection-profile search of the
    module docstring."""
    small = _downscaled(grey, SKEW_LONG_SIDE)
    dark = small < 0.75 * float(small.mean())
    ys, xs = np.nonzero(dark)
    if len(ys) < 200:
        return 0.0
    if len(ys) > 200_000:
        pick = np.random.default_rng(0).choice(len(ys), 200_000, replace=False)
        ys, xs = ys[pick], xs[pick]
    xs_c = xs.astype(np.float64) - small.shape[1] / 2.0
    ys_f = ys.astype(np.float64)
    margin = small.shape[1] * math.tan(math.radians(MAX_SKEW)) + 2

    def score(angle: float) -> float:
        # A line rising to the right at `angle` (counter-clockwise, y down) has y = y0 - x tan(a):
        # y + x tan(a) is the same along it.
        rows = np.round(ys_f + xs_c * math.tan(math.radians(angle)) + margin).astype(np.int64)
        profile = np.bincount(rows).astype(np.float64)
        return float(np.sum(np.diff(profile) ** 2))

    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 1e-9, COARSE_STEP)
    scores = [score(float(a)) for a in coarse]
    best = float(coarse[int(np.argmax(scores))])
    fine = np.arange(best - COARSE_STEP, best + COARSE_STEP + 1e-9, FINE_STEP)
    fine_scores = [score(float(a)) for a in fine]
    best = float(fine[int(np.argmax(fine_scores))])
    if abs(best) < MIN_SKEW or max(fine_scores) < MIN_SKEW_GAIN * score(0.0):
        return 0.0
    return round(max(-MAX_SKEW, min(MAX_SKEW, best)), 2)


def rotate_by(pixels: RgbImage, skew: float) -> RgbImage:
    """`pixels` rotated by -`skew` degrees (clockwise for a positive skew) about the centre,
    on a canvas grown to hold every corner, filled with the median border colour."""
    height, width = pixels.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), -skew, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width = math.ceil(height * sin + width * cos)
    new_height = math.ceil(height * cos + width * sin)
    matrix[0, 2] += new_width / 2.0 - width / 2.0
    matrix[1, 2] += new_height / 2.0 - height / 2.0
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    rotated = cv2.warpAffine(
        pixels,
        matrix,
        (new_width, new_height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )
    return np.asarray(rotated, dtype=np.uint8)


def page_turn(pixels: RgbImage, detector: OrientationDetector) -> tuple[int, float]:
    """OSD's clockwise quarter turn that stands the page `pixels` upright, and its confidence
    (`OrientationDetector.turn_and_confidence`)."""
    return detector.turn_and_confidence(to_grey(pixels))


def make_upright(pixels: RgbImage, detector: OrientationDetector | None, turn: int | None = None) -> Upright:
    """`pixels` turned upright and deskewed: turned by `turn` degrees clockwise when given,
    else as `detector` finds (None: not turned)."""
    grey = to_grey(pixels)
    if turn is not None:
        rotation = turn % 360
    else:
        rotation = detector.clockwise_turn(grey) if detector is not None else 0
    if rotation:
        pixels = turn_clockwise(pixels, rotation)
        grey = np.ascontiguousarray(np.rot90(grey, k=-(rotation // 90)))
    skew = find_skew(grey)
    if skew:
        pixels = rotate_by(pixels, skew)
    return Upright(pixels=pixels, rotation=rotation, skew=skew)
