"""Generated magazine pages: the untidy layouts real scans have and `harness.pages` lacks.

    page = render_magazine(MagazineSpec(seed=3))
    page.tiff, page.jpeg, page.truth_lines, page.truth_regions

One page, 300 dpi, binarised, seeded (every run draws the same pixels):

- a running header (publication name left, issue right) over a full-width rule;
- four columns of unequal width; column 1 runs the full height of the body, beside an
  L-shaped heading that spans columns 2-4 only, with those columns below it;
- a figure (a framed drawing: a sun, hills, a house) with a caption inside column 3, and
  a wide one across the foot of columns 1-2, its caption under it;
- columns of unequal height (ragged column ends), paragraphs with an indented first line
  and a short last line;
- a centred page number, and speckle noise all over the page (gutters included).

The truth is the text in reading order: header left, header right, column 1, the heading,
column 2, the wide figure's caption, column 3 (its text above the figure, the caption, its
text below), column 4, the page number. `truth_regions` names the region of each truth
line, so a test can check that no block mixes two regions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from PIL import Image, ImageDraw

from harness.images import load_font
from harness.pages import g4_tiff, pseudo_paragraph, scanned_jpeg, wrap_words


@dataclass(frozen=True)
class MagazineSpec:
    """A page `width` x `height` pixels at 300 dpi; body text `body_px` high (38 px is
    9 pt); the figure `figure_px` high."""

    seed: int = 0
    width: int = 2550
    height: int = 3300
    margin: int = 150
    body_px: int = 38
    heading_px: int = 80
    figure_px: int = 360
    heading: str = "Lanterns Return to the Old Harbour Bridge"
    caption: str = "Figure 2. The bridge at dusk, seen from the station."
    wide_caption: str = (
        "Figure 1. Lanterns on the harbour wall on the first evening of the winter market, "
        "before the council lit the bridge."
    )
    publication: str = "THE HARBOUR REVIEW"
    issue: str = "November 2026"
    page_number: int = 23

    @property
    def name(self) -> str:
        return f"magazine-{self.width}x{self.height}-s{self.seed}"


@dataclass
class MagazinePage:
    """A rendered page: `image` (mode "1", 300 dpi), the truth lines in reading order and
    the region of each ("header", "column1", "heading", "column2", "caption", ..., "folio")."""

    spec: MagazineSpec
    image: Image.Image
    truth_lines: list[str]
    truth_regions: list[str]

    @property
    def truth_text(self) -> str:
        return "\n".join(self.truth_lines)

    @cached_property
    def tiff(self) -> bytes:
        return g4_tiff(self.image)

    @cached_property
    def jpeg(self) -> bytes:
        return scanned_jpeg(self.image, self.spec.seed + 2000)


class _Writer:
    """Draws text lines and records them as truth, in the order they are drawn."""

    def __init__(self, image: Image.Image) -> None:
        self.draw = ImageDraw.Draw(image)
        self.lines: list[str] = []
        self.regions: list[str] = []

    def text(self, x: float, y: float, line: str, font: object, region: str) -> None:
        self.draw.text((round(x), round(y)), line, fill=0, font=font)  # type: ignore[arg-type]
        self.lines.append(line)
        self.regions.append(region)


def _column_text(
    rng: random.Random, writer: _Writer, font: object, width: float, lines: int
) -> list[tuple[str, bool]]:
    """At least `lines` lines of paragraphs `width` wide, each with whether it starts a
    paragraph (drawn indented)."""
    out: list[tuple[str, bool]] = []
    indent = 1.6 * _size(font)
    while len(out) < lines:
        wrapped = wrap_words(pseudo_paragraph(rng), width - indent, writer.draw, font)
        out.extend((line, k == 0) for k, line in enumerate(wrapped))
    return out[:lines]


def _size(font: object) -> int:
    return int(getattr(font, "size", 20))


def _flow(
    writer: _Writer,
    rng: random.Random,
    font: object,
    region: str,
    x: float,
    width: float,
    top: float,
    bottom: float,
) -> float:
    """Fill x..x+width from `top` down to at most `bottom` with body text; the y below it."""
    pitch = round(_size(font) * 1.3)
    count = max(int((bottom - top) // pitch), 0)
    y = top
    for line, first in _column_text(rng, writer, font, width, count):
        writer.text(x + (1.6 * _size(font) if first else 0), y, line, font, region)
        y += pitch
    return y


def _figure(draw: ImageDraw.ImageDraw, rng: random.Random, x: float, y: float, w: float, h: float) -> None:
    """A framed line drawing: sky, a sun, hills, a house; no text."""
    draw.rectangle((x, y, x + w, y + h), outline=0, width=4)
    sun = rng.uniform(0.3, 0.45) * min(w, h)
    draw.ellipse((x + w - sun - 30, y + 30, x + w - 30, y + 30 + sun), fill=0)
    ground = y + h * 0.65
    points = [(x + 4 + k * (w - 8) / 8, ground - rng.uniform(0, h * 0.3)) for k in range(9)]
    draw.line(points, fill=0, width=5)
    house = (x + w * 0.2, ground - h * 0.2, x + w * 0.38, ground + h * 0.2)
    draw.rectangle(house, fill=0)
    draw.polygon(
        [(house[0] - 15, house[1]), (house[2] + 15, house[1]), ((house[0] + house[2]) / 2, house[1] - 60)],
        fill=0,
    )
    for k in range(6):
        draw.line((x + 10, ground + 20 + 12 * k, x + w - 10, ground + 20 + 12 * k), fill=0, width=2)


def render_magazine(spec: MagazineSpec) -> MagazinePage:
    """Lay out and draw `spec` (see the module docstring)."""
    rng = random.Random(spec.seed)
    image = Image.new("L", (spec.width, spec.height), 255)
    writer = _Writer(image)
    draw = writer.draw
    body = load_font("dejavu-serif", spec.body_px)
    small = load_font("dejavu-sans", round(spec.body_px * 0.85))
    header_font = load_font("dejavu-sans-bold", round(spec.body_px * 0.9))
    heading_font = load_font("dejavu-sans-bold", spec.heading_px)
    left, right = spec.margin, spec.width - spec.margin

    # Running header and the rule under it.
    y: float = spec.margin
    writer.text(left, y, spec.publication, header_font, "header")
    issue_width = draw.textlength(spec.issue, font=small)
    writer.text(right - issue_width, y, spec.issue, small, "header")
    rule = y + round(spec.body_px * 1.6)
    draw.rectangle((left, rule, right, rule + 4), fill=0)
    top = rule + 2 * spec.body_px
    bottom = spec.height - spec.margin - 2 * spec.body_px

    # Four columns of unequal width (gutters 50-60 px).
    inner = right - left
    shares = [rng.uniform(0.85, 1.15) for _ in range(4)]
    gutters = [rng.randint(50, 60) for _ in range(3)]
    widths = [(inner - sum(gutters)) * s / sum(shares) for s in shares]
    xs = [left + sum(widths[:k]) + sum(gutters[:k]) for k in range(4)]

    # A wide figure across columns 1-2 at the foot of the body, its caption under it: with
    # the heading over columns 2-4 it blocks every cut through the whole body (XY-cut).
    wide = xs[1] + widths[1] - xs[0]
    caption_lines = wrap_words(spec.wide_caption, wide, draw, small)
    caption_pitch = round(_size(small) * 1.25)
    figure_bottom = bottom - len(caption_lines) * caption_pitch - round(spec.body_px * 0.4)
    figure_top = figure_bottom - spec.figure_px
    body_bottom = figure_top - spec.body_px

    # Column 1: the full height of the body, beside the heading.
    _flow(writer, rng, body, "column1", xs[0], widths[0], top, body_bottom)

    # The heading over columns 2-4 (an L beside column 1).
    span = xs[3] + widths[3] - xs[1]
    y = top
    for line in wrap_words(spec.heading, span, draw, heading_font):
        writer.text(xs[1], y, line, heading_font, "heading")
        y += round(spec.heading_px * 1.2)
    below = y + spec.body_px

    # Columns 2-4 of unequal height; the figure and its caption inside column 3.
    body_height = bottom - below
    _flow(writer, rng, body, "column2", xs[1], widths[1], below, body_bottom)
    _figure(draw, rng, xs[0], figure_top, wide, spec.figure_px)
    y = figure_bottom + round(spec.body_px * 0.4)
    for line in caption_lines:
        writer.text(xs[0], y, line, small, "caption")
        y += caption_pitch
    y = _flow(
        writer,
        rng,
        body,
        "column3",
        xs[2],
        widths[2],
        below,
        below + round(body_height * rng.uniform(0.2, 0.35)),
    )
    _figure(draw, rng, xs[2], y + 10, widths[2], spec.figure_px)
    y += 10 + spec.figure_px + round(spec.body_px * 0.6)
    for line in wrap_words(spec.caption, widths[2], draw, small):
        writer.text(xs[2], y, line, small, "column3")
        y += round(_size(small) * 1.25)
    column3_end = bottom - round(body_height * rng.uniform(0.0, 0.15))
    _flow(writer, rng, body, "column3", xs[2], widths[2], y + spec.body_px, column3_end)
    column4_end = bottom - round(body_height * rng.uniform(0.25, 0.4))
    _flow(writer, rng, body, "column4", xs[3], widths[3], below, column4_end)

    # The page number, centred under the body.
    folio = str(spec.page_number)
    writer.text(
        (spec.width - draw.textlength(folio, font=small)) / 2,
        spec.height - spec.margin,
        folio,
        small,
        "folio",
    )

    # Speckle: dots of 2-4 px anywhere, gutters and margins included.
    for _ in range(200):
        cx, cy, r = rng.uniform(0, spec.width), rng.uniform(0, spec.height), rng.uniform(0.8, 2.0)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=0)

    bilevel = image.point(lambda v: 255 if v >= 128 else 0).convert("1")
    return MagazinePage(spec=spec, image=bilevel, truth_lines=writer.lines, truth_regions=writer.regions)
