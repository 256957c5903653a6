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

`korean_spec(seed)` lays out the same page in Korean (Nanum fonts from Debian's fonts-nanum,
pseudo-Korean paragraphs with a few Latin acronyms and numbers, as Korean magazines have).

The truth is the text in reading order: header left, header right, column 1, the heading,
column 2, the wide figure's caption, column 3 (its text above the figure, the caption, its
text below), column 4, the page number. `truth_regions` names the region of each truth
line, so a test can check that no block mixes two regions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from harness.images import load_font
from harness.pages import g4_tiff, pseudo_paragraph, scanned_jpeg, wrap_words

NANUM = "/usr/share/fonts/truetype/nanum"
# The fonts of a page in each language: body, small (captions, issue, page number), header,
# heading. A name is `harness.images.load_font`'s, a path a TrueType file.
FONTS: dict[str, tuple[str, str, str, str]] = {
    "en": ("dejavu-serif", "dejavu-sans", "dejavu-sans-bold", "dejavu-sans-bold"),
    "ko": (
        f"{NANUM}/NanumMyeongjo.ttf",
        f"{NANUM}/NanumGothic.ttf",
        f"{NANUM}/NanumGothicBold.ttf",
        f"{NANUM}/NanumGothicBold.ttf",
    ),
}
# Eojeol (words with their particles and endings) that pseudo-Korean sentences are drawn
# from, a few Latin acronyms and numbers among them.
_KOREAN_TEXT = (
    "서비스는 네트워크를 통해 서로 데이터를 사용자의 요청을 처리하는 시스템에서 개발 팀은 기능을 "
    "독립적으로 배포하고 확장하며 기술을 바꿀 수 있습니다 오류를 추적하고 일관성을 보장하는 일은 "
    "어려워집니다 항구의 다리에 등불이 겨울 시장이 열리는 첫날 저녁 시의회는 주민들과 함께 역에서 "
    "바라본 강물이 조용히 흘러 도서관의 오래된 신문을 읽으며 아이들은 마을 광장에서 음악을 듣고 "
    "박물관은 새로운 전시를 준비하고 기차가 천천히 도착했다 날씨가 맑아서 사람들이 모였다 학생들이 "
    "역사와 문화를 배우는 작은 극장의 무대에서 편집자는 독자에게 편지를 보냈다 정원의 나무가 바람에 "
    "흔들리고 선생님은 질문에 답했다 AI KTX 2026년 11월 42명의"
)


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
    language: str = "en"

    @property
    def name(self) -> str:
        return f"magazine-{self.language}-{self.width}x{self.height}-s{self.seed}"


def korean_spec(seed: int = 0, **sizes: int) -> MagazineSpec:
    """The magazine page in Korean (`sizes`: MagazineSpec's pixel fields)."""
    return MagazineSpec(
        seed=seed,
        heading="옛 항구 다리에 등불이 다시 켜지다",
        caption="그림 2. 역에서 바라본 해 질 녘의 다리.",
        wide_caption="그림 1. 겨울 시장 첫날 저녁 항구 방파제의 등불, 시의회가 다리에 불을 밝히기 전.",
        publication="항구 리뷰",
        issue="2026년 11월",
        language="ko",
        **sizes,  # type: ignore[arg-type]
    )


def korean_paragraph(rng: random.Random) -> str:
    """A paragraph of 2-5 seeded pseudo-Korean sentences of 5-12 eojeol."""
    vocabulary = _KOREAN_TEXT.split()
    sentences = []
    for _ in range(rng.randint(2, 5)):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(5, 12))]
        if rng.random() < 0.25:
            cut = rng.randrange(2, len(words) - 1)
            words[cut - 1] += ","
        sentences.append(" ".join(words) + rng.choice([".", ".", ".", "?"]))
    return " ".join(sentences)


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
    rng: random.Random, writer: _Writer, font: object, width: float, lines: int, language: str
) -> list[tuple[str, bool]]:
    """At least `lines` lines of paragraphs `width` wide, each with whether it starts a
    paragraph (drawn indented)."""
    out: list[tuple[str, bool]] = []
    indent = 1.6 * _size(font)
    paragraph = korean_paragraph if language == "ko" else pseudo_paragraph
    while len(out) < lines:
        wrapped = wrap_words(paragraph(rng), width - indent, writer.draw, font)
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
    language: str,
) -> float:
    """Fill x..x+width from `top` down to at most `bottom` with body text; the y below it."""
    pitch = round(_size(font) * 1.3)
    count = max(int((bottom - top) // pitch), 0)
    y = top
    for line, first in _column_text(rng, writer, font, width, count, language):
        writer.text(x + (1.6 * _size(font) if first else 0), y, line, font, region)
        y += pitch
    return y


def _load(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font by `load_font`'s name or a TrueType file's path."""
    if name.startswith("/"):
        if not Path(name).is_file():
            raise LookupError(f"{name} is not installed (Debian: fonts-nanum)")
        return ImageFont.truetype(name, size=size)
    return load_font(name, size)


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
    body_name, small_name, header_name, heading_name = FONTS[spec.language]
    body = _load(body_name, spec.body_px)
    small = _load(small_name, round(spec.body_px * 0.85))
    header_font = _load(header_name, round(spec.body_px * 0.9))
    heading_font = _load(heading_name, spec.heading_px)
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
    _flow(writer, rng, body, "column1", xs[0], widths[0], top, body_bottom, spec.language)

    # The heading over columns 2-4 (an L beside column 1).
    span = xs[3] + widths[3] - xs[1]
    y = top
    for line in wrap_words(spec.heading, span, draw, heading_font):
        writer.text(xs[1], y, line, heading_font, "heading")
        y += round(spec.heading_px * 1.2)
    below = y + spec.body_px

    # Columns 2-4 of unequal height; the figure and its caption inside column 3.
    body_height = bottom - below
    _flow(writer, rng, body, "column2", xs[1], widths[1], below, body_bottom, spec.language)
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
        spec.language,
    )
    _figure(draw, rng, xs[2], y + 10, widths[2], spec.figure_px)
    y += 10 + spec.figure_px + round(spec.body_px * 0.6)
    for line in wrap_words(spec.caption, widths[2], draw, small):
        writer.text(xs[2], y, line, small, "column3")
        y += round(_size(small) * 1.25)
    column3_end = bottom - round(body_height * rng.uniform(0.0, 0.15))
    _flow(writer, rng, body, "column3", xs[2], widths[2], y + spec.body_px, column3_end, spec.language)
    column4_end = bottom - round(body_height * rng.uniform(0.25, 0.4))
    _flow(writer, rng, body, "column4", xs[3], widths[3], below, column4_end, spec.language)

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
