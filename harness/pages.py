"""Generated scanned-document pages: a full-width heading over 2, 3 or 4 columns of body
text at 300 dpi, binarised, as a bi-level G4 TIFF or as a noisy JPEG (what a cheap office
scanner makes of the same page), with their text in reading order as the truth.

    page = render_page(PageSpec(columns=3))
    page.tiff, page.jpeg, page.truth_lines    # truth: heading, then column 1, 2, 3

The text is pseudo-English drawn from a fixed vocabulary with a seeded generator, so every
run makes the same pages and no text file is needed. Fonts are the DejaVu set (matplotlib's
copy or the system's, see `harness.images`).
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from harness.images import load_font

DPI = 300

_VOCABULARY = (
    "the of and to in is was for that with as on by at from this which be are it an or his "
    "her they were had not but have one all their there been more when who will would can "
    "time people year work life world state system group number water under between never "
    "house school country during without however another through before because against "
    "public report market family company service program question government small large "
    "early later little great local national second social private general special common "
    "morning evening winter summer garden village harbour river mountain island station "
    "letter paper window kitchen doctor teacher student engine signal method result record "
    "history culture science music theatre painting museum library journal editor reader "
    "simple careful quiet bright narrow ancient modern gentle sudden steady honest useful "
    "carried opened walked turned showed looked waited answered followed remembered "
    "decided noticed promised explained described returned travelled gathered measured "
    "printed column morning paragraph harvest weather council bridge market lantern "
    "November Tuesday London Geneva Lisbon Oslo Danube Atlantic Mercury Lovelace Babbage"
)
_WORDS = _VOCABULARY.split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 15))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), str(rng.choice([1848, 1907, 2026, 42, 315, 12, 7])))
    text = " ".join(words)
    if rng.random() < 0.25:
        cut = rng.randrange(2, len(words) - 1)
        text = " ".join(words[:cut]) + ", " + " ".join(words[cut:])
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", ".", "?", ";", ":"])


def pseudo_paragraph(rng: random.Random) -> str:
    """A paragraph of 2-5 seeded pseudo-English sentences."""
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))


@dataclass(frozen=True)
class PageSpec:
    """One page: `columns` of body text under a full-width heading. Sizes in pixels at
    300 dpi: `width` x `height` (Letter is 2550 x 3300), body text `body_px` high (42 px
    is 10 pt), `lines_per_column` at most (None: as many as fit)."""

    columns: int
    seed: int = 0
    width: int = 2550
    height: int = 3300
    margin: int = 150
    gutter: int = 75
    body_px: int = 42
    heading_px: int = 96
    lines_per_column: int | None = None
    heading: str = "Harbour Council Reports on the Winter Market"

    @property
    def name(self) -> str:
        return f"{self.columns}col-{self.width}x{self.height}-s{self.seed}"


def wrap_by(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """`text` broken into lines whose `measure` is at most `width` (no hyphenation)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and measure(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def wrap_words(text: str, width: float, measure: ImageDraw.ImageDraw, font: object) -> list[str]:
    """`text` broken into lines at most `width` pixels long in `font` (no hyphenation)."""
    return wrap_by(text, width, lambda line: measure.textlength(line, font=font))  # type: ignore[arg-type]


@dataclass
class GeneratedPage:
    """A rendered page: `image` (mode "1", 300 dpi) and the truth in reading order, with
    the block (0 = heading, then one per column) of each line."""

    spec: PageSpec
    image: Image.Image
    truth_lines: list[str]
    truth_blocks: list[int]

    @property
    def truth_text(self) -> str:
        return "\n".join(self.truth_lines)

    @cached_property
    def tiff(self) -> bytes:
        """Bi-level, CCITT Group 4 compressed, 300 dpi."""
        return g4_tiff(self.image)

    @cached_property
    def jpeg(self) -> bytes:
        """The same page as a scanner would deliver it (`scanned_jpeg`)."""
        return scanned_jpeg(self.image, self.spec.seed + 1000)


def g4_tiff(image: Image.Image) -> bytes:
    """`image` (mode "1") as a bi-level, CCITT Group 4 compressed, 300 dpi TIFF."""
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF", compression="group4", dpi=(DPI, DPI))
    return buffer.getvalue()


def scanned_jpeg(image: Image.Image, seed: int) -> bytes:
    """`image` as a cheap scanner would deliver it: grey, slightly blurred, a little skewed,
    with sensor noise and specks, JPEG quality 75 (seeded: the same bytes every run)."""
    rng = np.random.default_rng(seed)
    grey = image.convert("L").filter(ImageFilter.GaussianBlur(0.7))
    grey = grey.rotate(0.3, resample=Image.Resampling.BILINEAR, fillcolor=255)
    pixels = np.asarray(grey, dtype=np.float32) * 0.85 + 25.0
    pixels += rng.normal(0.0, 10.0, pixels.shape).astype(np.float32)
    specks = rng.random(pixels.shape) < 0.0004
    pixels[specks] = 30.0
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    out.save(buffer, format="JPEG", quality=75, dpi=(DPI, DPI))
    return buffer.getvalue()


def render_page(spec: PageSpec) -> GeneratedPage:
    """Lay out and draw `spec`: heading lines (bold sans) across the full width, then the
    body (serif) flowing down column 1, then column 2, ... Left-aligned, no hyphenation."""
    rng = random.Random(spec.seed)
    body = load_font("dejavu-serif", spec.body_px)
    heading = load_font("dejavu-sans-bold", spec.heading_px)
    image = Image.new("L", (spec.width, spec.height), 255)
    draw = ImageDraw.Draw(image)
    inner = spec.width - 2 * spec.margin

    truth: list[str] = []
    blocks: list[int] = []
    y = spec.margin
    for line in wrap_words(spec.heading, inner, draw, heading):
        draw.text((spec.margin, y), line, fill=0, font=heading)
        truth.append(line)
        blocks.append(0)
        y += round(spec.heading_px * 1.25)
    top = y + spec.body_px * 2

    pitch = round(spec.body_px * 1.3)
    fits = (spec.height - spec.margin - top) // pitch
    per_column = min(fits, spec.lines_per_column or fits)
    column_width = (inner - (spec.columns - 1) * spec.gutter) / spec.columns
    body_lines: list[str] = []
    while len(body_lines) < per_column * spec.columns:
        body_lines.extend(wrap_words(pseudo_paragraph(rng), column_width, draw, body))
    for column in range(spec.columns):
        x = spec.margin + column * (column_width + spec.gutter)
        for row, line in enumerate(body_lines[column * per_column : (column + 1) * per_column]):
            draw.text((round(x), top + row * pitch), line, fill=0, font=body)
            truth.append(line)
            blocks.append(column + 1)
    bilevel = image.point(lambda v: 255 if v >= 128 else 0).convert("1")
    return GeneratedPage(spec=spec, image=bilevel, truth_lines=truth, truth_blocks=blocks)


_SPACES = re.compile(r"\s+")


def normalise_whitespace(text: str) -> str:
    """Every run of whitespace (line breaks included) as one space: page CER compares the
    text read, not where the engine broke lines."""
    return _SPACES.sub(" ", text).strip()


def page_error_rate(expected: str, actual: str) -> float:
    """Character error rate (Levenshtein distance / len(expected)) of two page texts after
    `normalise_whitespace`. Vectorised over rows, so whole pages take well under a second."""
    a, b = normalise_whitespace(expected), normalise_whitespace(actual)
    if not a:
        return 0.0 if not b else 1.0
    target = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    columns = np.arange(len(target) + 1, dtype=np.int64)
    previous = columns.copy()
    for i, char in enumerate(np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32), start=1):
        current = np.empty_like(previous)
        current[0] = i
        # Deletion or substitution first; then insertions, a running minimum along the row:
        # current[j] = min over k <= j of (candidate[k] + j - k).
        current[1:] = np.minimum(previous[1:] + 1, previous[:-1] + (target != char))
        current = np.minimum.accumulate(current - columns) + columns
        previous = current
    return float(previous[-1]) / len(a)
