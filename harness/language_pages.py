"""Scanned-looking pages of real prose in the languages ocr_svc reads, so tests and the
bench know the exact text: Vietnamese, German and French in DejaVu Sans (Debian's
fonts-dejavu-core), Korean in Nanum Gothic (fonts-nanum), drawn at about 11 pt at 300 dpi,
then given a light scan (grey, a little blur, sensor noise, a few specks).

    page = language_page("vi")
    page.png, page.truth_text
    columns_page("ko", columns=2, text_px=34)   # the paragraph thrice, in columns
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from harness.pages import wrap_words

# The same paragraph (what microservices are for) in each language, as a person wrote it.
PROSE: dict[str, str] = {
    "vi": (
        "Kiến trúc vi dịch vụ đã trở nên phổ biến trong những năm gần đây. Mỗi dịch vụ đảm nhận "
        "một chức năng riêng và giao tiếp với nhau qua mạng. Nhờ vậy, các nhóm phát triển có thể "
        "triển khai từng phần độc lập, mở rộng theo nhu cầu và thay thế công nghệ mà không ảnh "
        "hưởng đến toàn bộ hệ thống. Tuy nhiên, việc theo dõi lỗi và bảo đảm tính nhất quán của "
        "dữ liệu trở nên khó khăn hơn."
    ),
    "de": (
        "Die Architektur aus kleinen Diensten hat sich in den letzten Jahren weit verbreitet. Jeder "
        "Dienst übernimmt eine eigene Aufgabe und spricht über das Netzwerk mit den anderen. Dadurch "
        "können Teams einzelne Teile unabhängig voneinander ausliefern, bei Bedarf vergrößern und "
        "Technologien austauschen, ohne das gesamte System zu gefährden. Größere Schwierigkeiten "
        "bereiten jedoch die Fehlersuche und die Übereinstimmung der Daten über mehrere Dienste hinweg."
    ),
    "fr": (
        "L'architecture en petits services s'est largement répandue ces dernières années. Chaque "
        "service assure une fonction précise et communique avec les autres à travers le réseau. Les "
        "équipes peuvent ainsi déployer chaque partie indépendamment, l'étendre selon les besoins et "
        "remplacer une technologie sans mettre en péril l'ensemble du système. En revanche, la "
        "recherche des erreurs et la cohérence des données deviennent plus délicates à garantir."
    ),
    "ko": (
        "마이크로서비스 아키텍처는 최근 몇 년 동안 널리 사용되고 있습니다. 각 서비스는 고유한 기능을 "
        "담당하며 네트워크를 통해 서로 통신합니다. 덕분에 개발 팀은 각 부분을 독립적으로 배포하고 "
        "필요에 따라 확장하며 전체 시스템에 영향을 주지 않고 기술을 바꿀 수 있습니다. 그러나 오류를 "
        "추적하고 데이터의 일관성을 보장하는 일은 더 어려워집니다."
    ),
}
FONT_FILES: dict[str, Path] = {
    "vi": Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    "de": Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    "fr": Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    "ko": Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf"),
}
FONT_PACKAGES = {
    "vi": "fonts-dejavu-core",
    "de": "fonts-dejavu-core",
    "fr": "fonts-dejavu-core",
    "ko": "fonts-nanum",
}
# A letter-size page at 300 dpi, 11 pt text (46 px), 1-inch margins.
PAGE_WIDTH, PAGE_HEIGHT, MARGIN, TEXT_PX = 2550, 1400, 300, 46


class FontMissing(Exception):
    """The font a language's page is drawn with is not installed; the message names its package."""


@dataclass(frozen=True)
class LanguagePage:
    """A rendered page: its lines of truth in reading order and the scanned-looking image."""

    language: str
    truth_lines: tuple[str, ...]
    image: Image.Image

    @property
    def truth_text(self) -> str:
        return "\n".join(self.truth_lines)

    @cached_property
    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", dpi=(300, 300))
        return buffer.getvalue()


def _font(language: str, size_px: int) -> ImageFont.FreeTypeFont:
    """The font `language`'s pages are drawn with, at `size_px`. Raises `FontMissing`
    naming the Debian package."""
    font_file = FONT_FILES[language]
    if not font_file.is_file():
        raise FontMissing(f"{font_file} is missing (Debian: {FONT_PACKAGES[language]})")
    return ImageFont.truetype(str(font_file), size_px)


def language_page(language: str, *, seed: int = 7) -> LanguagePage:
    """The page of `PROSE[language]`. Raises `FontMissing` naming the Debian package."""
    font = _font(language, TEXT_PX)
    # Composed characters (one code point per accented letter), as OCR engines write them.
    text = unicodedata.normalize("NFC", PROSE[language])
    image = Image.new("L", (PAGE_WIDTH, PAGE_HEIGHT), 255)
    draw = ImageDraw.Draw(image)
    lines = wrap_words(text, PAGE_WIDTH - 2 * MARGIN, draw, font)
    pitch = round(TEXT_PX * 1.6)
    for row, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + row * pitch), line, fill=0, font=font)
    return LanguagePage(language=language, truth_lines=tuple(lines), image=_lightly_scanned(image, seed))


def _lightly_scanned(image: Image.Image, seed: int) -> Image.Image:
    """`image` as a decent office scanner delivers it: a little blur, paper not quite white,
    sensor noise and a few specks (seeded: the same pixels every run)."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32) * 0.9 + 18.0
    pixels += rng.normal(0.0, 6.0, pixels.shape).astype(np.float32)
    pixels[rng.random(pixels.shape) < 0.0002] = 40.0
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def columns_page(
    language: str, *, columns: int, text_px: int, leading: float = 1.4, seed: int = 3
) -> LanguagePage:
    """A Letter page at 300 dpi of `PROSE[language]` three times over, set in `columns`
    columns of `text_px` type (34 px is about 8 pt) at `leading` times its size, filled
    column by column, then lightly scanned. Raises `FontMissing` naming the Debian package."""
    font = _font(language, text_px)
    text = " ".join([unicodedata.normalize("NFC", PROSE[language])] * 3)
    width, height, margin, gutter = 2550, 3300, 200, 80
    column_width = (width - 2 * margin - (columns - 1) * gutter) / columns
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    lines = wrap_words(text, column_width, draw, font)
    per_column = -(-len(lines) // columns)
    pitch = round(text_px * leading)
    for index, line in enumerate(lines):
        column, row = divmod(index, per_column)
        draw.text((margin + column * (column_width + gutter), margin + row * pitch), line, fill=0, font=font)
    return LanguagePage(language=language, truth_lines=tuple(lines), image=_lightly_scanned(image, seed))
