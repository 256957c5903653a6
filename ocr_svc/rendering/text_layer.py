"""The invisible text of a searchable PDF, drawn by fpdf2: one page per page of the
document, the size of its upright image in points, each word in text render mode 3
(invisible), its font size from the word box's height, its baseline where the box puts
it and its glyphs scaled horizontally (Tz) to the box's width, so that a viewer's
selection highlights the word where it is on the image. A space follows each word but the
last of a line, scaled to the gap before the next word, so copied text keeps its spaces.

Fonts: DejaVu Sans (Debian's fonts-dejavu-core) covers Latin with Vietnamese's stacked
diacritics; NanumGothic (fonts-nanum) covers Hangul. Neither covers both, so each word
takes the first that has all its characters (else the one that has most). fpdf2 embeds
the subset of glyphs used, once for the whole document: the text layers of all pages
are pages of one fpdf2 document, and each is grafted onto its page (`searchable_pdf`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import TextMode
from fpdf.fonts import TTFFont

from ocr_svc.rendering.geometry import PageGeometry
from ocr_svc.rendering.pages import PageContent, PageWord

# fontTools says, for every subset it makes, which tables of these fonts it drops.
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)


@dataclass(frozen=True)
class TextFont:
    family: str
    path: Path


FONTS: Final = (
    TextFont("dejavu-sans", Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")),
    TextFont("nanum-gothic", Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")),
)
# Stretching (percent) kept within what viewers handle well.
_MIN_STRETCH, _MAX_STRETCH = 1.0, 2000.0


@functools.cache
def _characters(path: Path) -> frozenset[int]:
    if not path.is_file():
        raise RuntimeError(f"the font {path} is missing (Debian's fonts-dejavu-core and fonts-nanum)")
    font = TTFont(str(path), lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def font_for(text: str) -> TextFont:
    """The first font that draws every character of `text`, else the one that draws most."""
    codes = [ord(char) for char in text if not char.isspace()]
    best, best_count = FONTS[0], -1
    for font in FONTS:
        have = _characters(font.path)
        count = sum(code in have for code in codes)
        if count == len(codes):
            return font
        if count > best_count:
            best, best_count = font, count
    return best


class TextLayers:
    """The text layers of a document, a page at a time (`add`), then the PDF (`output`)."""

    def __init__(self) -> None:
        self._pdf = FPDF(unit="pt")
        self._pdf.set_auto_page_break(False)
        self._pdf.set_creator("ocrmesh")
        self._families: set[str] = set()
        self._metrics: dict[str, tuple[float, float]] = {}
        self._widths: dict[tuple[str, str], float] = {}

    def add(self, content: PageContent, geometry: PageGeometry) -> int:
        """Draws the page's words on a new page; returns that page's 0-based index."""
        pdf = self._pdf
        # Tz is state of a page's content stream: every page starts at 100.
        pdf.set_stretching(100)
        pdf.add_page(format=geometry.text_layer_size())
        pdf.text_mode = TextMode.INVISIBLE
        scale = geometry.points_per_pixel
        for line in content.lines:
            for index, word in enumerate(line.words):
                following = line.words[index + 1] if index + 1 < len(line.words) else None
                self._word(word, following, scale)
        return pdf.page - 1

    def output(self) -> bytes:
        return bytes(self._pdf.output())

    def _use(self, font: TextFont, size: float) -> tuple[float, float]:
        """Sets the font at `size`; returns its ascent and descent per point of size."""
        if font.family not in self._families:
            self._pdf.add_font(font.family, fname=str(font.path))
            self._families.add(font.family)
            self._pdf.set_font(font.family, size=1.0)
            current = self._pdf.current_font
            assert isinstance(current, TTFFont)
            self._metrics[font.family] = (
                float(current.desc.ascent) / 1000,
                -float(current.desc.descent) / 1000,
            )
        self._pdf.set_font(font.family, size=size)
        return self._metrics[font.family]

    def _word(self, word: PageWord, following: PageWord | None, scale: float) -> None:
        rect = word.rect
        height = rect.height * scale
        if height <= 0 or rect.width <= 0:
            return
        font = font_for(word.text)
        ascent, descent = self._metrics.get(font.family) or self._use(font, 1.0)
        # The em size whose ascent + descent fill the box's height.
        size = height / max(ascent + descent, 0.5)
        self._use(font, size)
        baseline = rect.top * scale + ascent * size
        self._draw(font, word.text, rect.left * scale, baseline, rect.width * scale, size)
        if following is not None:
            right = rect.right * scale
            gap = max(following.rect.left * scale - right, 0.0)
            self._draw(font, " ", right, baseline, gap, size)

    def _draw(
        self, font: TextFont, text: str, left: float, baseline: float, width: float, size: float
    ) -> None:
        pdf = self._pdf
        key = (font.family, text)
        per_point = self._widths.get(key)
        if per_point is None:
            # A string's width grows with the size: measured once a document, per point.
            per_point = pdf.get_string_width(text) * 100 / pdf.font_stretching / size
            self._widths[key] = per_point
        natural = per_point * size
        if natural <= 0:
            return
        stretch = min(max(width / natural * 100, _MIN_STRETCH), _MAX_STRETCH)
        pdf.set_stretching(stretch)
        pdf.text(left, baseline, text)
