"""Where a page event's pixels are on the original page.

A page's boxes are in pixels of its upright image: the page as displayed (a PDF page
rendered at `dpi` with its /Rotate and CropBox, as a viewer shows it; an image with its
EXIF orientation applied), turned `rotation` degrees clockwise, then straightened. `skew`
is the crookedness that was corrected, counter-clockwise positive (as `harness.documents`
makes crooked scans): the straightening turned the page `skew` degrees clockwise about its
centre (a straightening that enlarges the canvas keeps the centres on each other).

Back to the original page, from upright pixels: undo the skew (turn `skew` degrees
counter-clockwise about the centre), undo the quarter turns, scale by 72/dpi to points,
flip y, and place the result in the page's user space through its /Rotate and the
offset of its CropBox. The whole chain is affine: `text_layer_matrix` gives it as the
matrix that places a text layer drawn on the upright page (in points, y up) onto the
original page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

# A page or image that states no resolution: one pixel per point.
DEFAULT_DPI: Final = 72.0


@dataclass(frozen=True)
class Affine:
    """The PDF matrix [a b c d e f]: (x, y) -> (a x + c y + e, b x + d y + f)."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    def apply(self, x: float, y: float) -> tuple[float, float]:
        return (self.a * x + self.c * y + self.e, self.b * x + self.d * y + self.f)

    def values(self) -> tuple[float, float, float, float, float, float]:
        return (self.a, self.b, self.c, self.d, self.e, self.f)


@dataclass(frozen=True)
class PageGeometry:
    """A page event (upright `width` x `height` pixels, `rotation`, `skew`, `dpi`) and the
    original page it was read from: its visible box in user space (`box`: left, bottom,
    right, top, in points) and /Rotate."""

    width: int
    height: int
    rotation: int
    skew: float
    dpi: float
    box: tuple[float, float, float, float]
    page_rotate: int = 0

    @property
    def points_per_pixel(self) -> float:
        return 72.0 / (self.dpi if self.dpi > 0 else DEFAULT_DPI)

    def displayed_size(self) -> tuple[float, float]:
        """The original page as displayed (its /Rotate applied), in points."""
        left, bottom, right, top = self.box
        width, height = right - left, top - bottom
        return (height, width) if self.page_rotate % 180 else (width, height)

    def upright_to_user(self, x: float, y: float) -> tuple[float, float]:
        """A point in upright page pixels -> the original page's user space (points)."""
        scale = self.points_per_pixel
        shown_w, shown_h = self.displayed_size()
        shown_w, shown_h = shown_w / scale, shown_h / scale  # displayed page, pixels
        turned_w, turned_h = (shown_h, shown_w) if self.rotation % 180 else (shown_w, shown_h)
        # Undo the straightening: turn `skew` counter-clockwise (y points down) about the centres.
        angle = math.radians(self.skew)
        dx, dy = x - self.width / 2, y - self.height / 2
        tx = turned_w / 2 + dx * math.cos(angle) + dy * math.sin(angle)
        ty = turned_h / 2 - dx * math.sin(angle) + dy * math.cos(angle)
        # Undo the clockwise quarter turns.
        turn = self.rotation % 360
        if turn == 90:
            sx, sy = ty, shown_h - tx
        elif turn == 180:
            sx, sy = shown_w - tx, shown_h - ty
        elif turn == 270:
            sx, sy = shown_w - ty, tx
        else:
            sx, sy = tx, ty
        return self._displayed_to_user(sx * scale, sy * scale)

    def _displayed_to_user(self, a: float, b: float) -> tuple[float, float]:
        """Points right (a) and down (b) from the displayed page's top-left corner ->
        user space, through /Rotate (the page turned clockwise for display)."""
        left, bottom, right, top = self.box
        rotate = self.page_rotate % 360
        if rotate == 90:
            return (left + b, bottom + a)
        if rotate == 180:
            return (right - a, bottom + b)
        if rotate == 270:
            return (right - b, top - a)
        return (left + a, top - b)

    def text_layer_size(self) -> tuple[float, float]:
        """The upright page in points: the size of the page its text layer is drawn on."""
        return (self.width * self.points_per_pixel, self.height * self.points_per_pixel)

    def text_layer_matrix(self) -> Affine:
        """The matrix that places the text layer (the upright page in points, origin at
        the bottom left, y up) onto the original page's user space."""
        scale = self.points_per_pixel

        def layer_to_user(u: float, v: float) -> tuple[float, float]:
            return self.upright_to_user(u / scale, self.height - v / scale)

        e, f = layer_to_user(0.0, 0.0)
        ax, ay = layer_to_user(1.0, 0.0)
        cx, cy = layer_to_user(0.0, 1.0)
        return Affine(ax - e, ay - f, cx - e, cy - f, e, f)
