"""Test images rendered with Pillow, so OCR tests know the exact text in them.

Fonts come with Python packages (Pillow's bundled default font, matplotlib's DejaVu set),
falling back to the system's DejaVu, so results do not depend on what a machine has:

    png = render_text_image(["Hello world", "Second line"], font="dejavu-serif", size=32)
    png = sample_multiline_png()
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

Color = str | tuple[int, int, int]

# font name -> file name in matplotlib's mpl-data/fonts/ttf and /usr/share/fonts/truetype/dejavu
_DEJAVU_FILES = {
    "dejavu-sans": "DejaVuSans.ttf",
    "dejavu-serif": "DejaVuSerif.ttf",
    "dejavu-mono": "DejaVuSansMono.ttf",
    "dejavu-sans-bold": "DejaVuSans-Bold.ttf",
}
# Pillow >= 10.1 bundles a real TrueType font (Aileron Regular) for load_default(size=).
PILLOW_DEFAULT = "pillow-default"

SAMPLE_PARAGRAPH = (
    "Invoice 2024-0815 for Ada Lovelace",
    "Analytical Engine maintenance, 3 hours",
    "Punched cards and paper rolls: 42 units",
    "Subtotal 1250.00 EUR, tax 19 percent",
    "Please pay within 30 days.",
    "Thank you for your business!",
)


def _font_dirs() -> list[Path]:
    dirs = []
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.origin:
        dirs.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf")
    dirs.append(Path("/usr/share/fonts/truetype/dejavu"))
    return dirs


@cache
def _font_file(name: str) -> Path | None:
    filename = _DEJAVU_FILES.get(name)
    if filename is None:
        return None
    for directory in _font_dirs():
        if (directory / filename).is_file():
            return directory / filename
    return None


def available_fonts() -> list[str]:
    """The font names `render_text_image` can use here (Pillow's default is always one)."""
    return [PILLOW_DEFAULT, *(name for name in _DEJAVU_FILES if _font_file(name) is not None)]


def load_font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if name == PILLOW_DEFAULT:
        return ImageFont.load_default(size=size)
    path = _font_file(name)
    if path is None:
        raise LookupError(f"font {name!r} is not available here (have {available_fonts()})")
    return ImageFont.truetype(str(path), size=size)


def render_text_image(
    lines: Sequence[str],
    *,
    font: str = PILLOW_DEFAULT,
    size: int = 28,
    background: Color = "white",
    color: Color = "black",
    padding: int = 24,
    line_spacing: float = 1.7,
    image_format: str = "PNG",
) -> bytes:
    """`lines` drawn top to bottom, left-aligned, encoded as `image_format` (a Pillow name)."""
    image = render_text_pil(
        lines,
        font=font,
        size=size,
        background=background,
        color=color,
        padding=padding,
        line_spacing=line_spacing,
    )
    return encode(image, image_format)


def render_text_pil(
    lines: Sequence[str],
    *,
    font: str = PILLOW_DEFAULT,
    size: int = 28,
    background: Color = "white",
    color: Color = "black",
    padding: int = 24,
    line_spacing: float = 1.7,
) -> Image.Image:
    """Like `render_text_image`, as a Pillow image."""
    face = load_font(font, size)
    widths = [ImageDraw.Draw(Image.new("L", (1, 1))).textlength(line, font=face) for line in lines]
    step = round(size * line_spacing)
    width = int(max(widths, default=0)) + 2 * padding
    height = step * max(len(lines), 1) + 2 * padding
    image = Image.new("RGB", (max(width, 64), max(height, 32)), background)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((padding, padding + index * step), line, fill=color, font=face)
    return image


def encode(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    if image_format.upper() in ("JPEG", "JPG"):
        image.convert("RGB").save(buffer, format="JPEG", quality=92)
    else:
        image.save(buffer, format=image_format)
    return buffer.getvalue()


def sample_multiline_png(font: str = PILLOW_DEFAULT, size: int = 28) -> bytes:
    """A six-line invoice-like paragraph (`SAMPLE_PARAGRAPH`) as PNG."""
    return render_text_image(SAMPLE_PARAGRAPH, font=font, size=size)


def character_error_rate(expected: str, actual: str) -> float:
    """Levenshtein distance between the texts divided by the length of `expected`."""
    if not expected:
        return 0.0 if not actual else 1.0
    previous = list(range(len(actual) + 1))
    for i, a in enumerate(expected, start=1):
        current = [i]
        for j, b in enumerate(actual, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1] / len(expected)
