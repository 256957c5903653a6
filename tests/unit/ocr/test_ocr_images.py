"""Upload validation and decoding: accepted formats, and every refusal with its reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from harness.images import encode, render_text_pil
from ocr_svc.images import ImageLimits, InvalidImage, decode_image

LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)


def _png_with_header_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is tiny (a bomb's shape)."""
    signature = b"\x89PNG\r\n\x1a\n"

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        signature + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "TIFF", "BMP"])
def test_every_accepted_format_decodes_to_rgb_pixels(image_format: str) -> None:
    image = render_text_pil(["Format test"], size=24)
    decoded = decode_image(encode(image, image_format), LIMITS)
    assert decoded.format == image_format
    assert (decoded.width, decoded.height) == image.size
    assert decoded.pixels.shape == (image.height, image.width, 3)
    assert decoded.pixels.dtype == np.uint8


def test_transparent_areas_become_a_white_page() -> None:
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    image.putpixel((5, 5), (0, 0, 0, 255))
    decoded = decode_image(encode(image, "PNG"), LIMITS)
    assert decoded.pixels[0, 0].tolist() == [255, 255, 255]
    assert decoded.pixels[5, 5].tolist() == [0, 0, 0]


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    values = np.linspace(0, 65535, 64 * 16, dtype=np.uint16).reshape(16, 64)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    decoded = decode_image(encode(image, "TIFF"), LIMITS)
    assert decoded.pixels.max() == 255
    assert decoded.pixels.min() == 0


def test_exif_orientation_is_applied() -> None:
    image = render_text_pil(["Rotated"], size=24)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the viewer turns it upright
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    decoded = decode_image(buffer.getvalue(), LIMITS)
    assert (decoded.width, decoded.height) == (image.height, image.width)


def _reason(data: bytes, limits: ImageLimits = LIMITS) -> str:
    with pytest.raises(InvalidImage) as refused:
        decode_image(data, limits)
    return refused.value.reason


def test_an_empty_upload_is_refused() -> None:
    assert "empty" in _reason(b"")


def test_an_upload_over_the_byte_limit_is_refused_before_parsing() -> None:
    reason = _reason(b"\x89PNG" + b"\x00" * 2000, ImageLimits(max_bytes=1000, max_pixels=10**6))
    assert "1000 bytes" in reason


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"hello, I am plain text", id="text"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj", id="pdf"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", id="svg"),
    ],
)
def test_what_is_not_an_image_is_refused(data: bytes) -> None:
    assert "accepted format" in _reason(data)


def test_an_image_in_a_format_outside_the_allow_list_is_refused() -> None:
    gif = encode(render_text_pil(["GIF"], size=20).convert("P"), "GIF")
    assert "accepted format" in _reason(gif)


def test_a_truncated_image_is_refused_with_the_reason() -> None:
    png = encode(render_text_pil(["Truncated"], size=28), "PNG")
    reason = _reason(png[: len(png) // 2])
    assert "corrupt or truncated" in reason


def test_corrupt_pixel_data_is_refused() -> None:
    jpeg = bytearray(encode(render_text_pil(["Corrupt"], size=28), "JPEG"))
    # Keep the headers, scramble the entropy-coded data and drop the end marker.
    for i in range(len(jpeg) // 2, len(jpeg) - 2):
        jpeg[i] = 0xFF if i % 7 == 0 else jpeg[i] ^ 0x5A
    jpeg = jpeg[:-400]
    assert "corrupt" in _reason(bytes(jpeg))


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = _png_with_header_size(20_000, 20_000)  # 400 megapixels in ~100 bytes
    assert len(bomb) < 200
    reason = _reason(bomb)
    assert "pixels" in reason


def test_an_image_over_the_pixel_limit_is_refused() -> None:
    png = encode(render_text_pil(["Big enough"], size=28), "PNG")
    reason = _reason(png, ImageLimits(max_bytes=10**7, max_pixels=1000))
    assert "the limit is 1000" in reason
