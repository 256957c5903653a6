"""Validation and decoding of uploaded images, in memory (no files, no shared scratch).

Checks run cheapest first: the byte size, then the header (format allow-list, pixel
count, so a decompression bomb is refused before any pixel is decoded), then the full
decode, which finds truncated or corrupt data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ocr_svc.engines.base import RgbImage

# Pillow format names accepted; everything else (GIF, PDF, SVG, ...) is refused.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")


class InvalidImage(Exception):
    """The upload is not an image we accept. `reason` is safe to return to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    """What the service accepts."""

    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class DecodedImage:
    """Pixels ready for an engine."""

    pixels: RgbImage
    width: int
    height: int
    format: str


def decode_image(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Decode `data` into RGB pixels, or raise `InvalidImage` with the reason."""
    if not data:
        raise InvalidImage("the image is empty")
    if len(data) > limits.max_bytes:
        raise InvalidImage(f"the image is {len(data)} bytes; the limit is {limits.max_bytes} bytes")
    try:
        # Reads the header only; `formats` keeps Pillow from trying any other decoder.
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise InvalidImage("not an image in an accepted format (PNG, JPEG, WebP, TIFF, BMP)") from None
    except Image.DecompressionBombError:
        raise InvalidImage(f"the image has too many pixels; the limit is {limits.max_pixels}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"the image header is corrupt: {_describe(exc)}") from None
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImage("the image has no pixels")
        if width * height > limits.max_pixels:
            raise InvalidImage(
                f"the image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}"
            )
        image_format = image.format or "?"
        try:
            image.load()
            pixels = _to_rgb(ImageOps.exif_transpose(image))
        except Image.DecompressionBombError:
            raise InvalidImage(f"the image has too many pixels; the limit is {limits.max_pixels}") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise InvalidImage(f"the image data is corrupt or truncated: {_describe(exc)}") from None
    return DecodedImage(pixels=pixels, width=pixels.shape[1], height=pixels.shape[0], format=image_format)


def _to_rgb(image: Image.Image) -> RgbImage:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white: text drawn on a transparent background is
        # usually meant to be seen on a light page.
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        page.alpha_composite(rgba)
        image = page
    elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale (scans as TIFF): scale to 8 bits instead of clipping.
        values = np.asarray(image, dtype=np.float64)
        top = values.max() or 1.0
        image = Image.fromarray((values * (255.0 / top)).astype(np.uint8))
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        spread = (high - low) or 1.0
        image = Image.fromarray(((values - low) * (255.0 / spread)).astype(np.uint8))
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)


def _describe(exc: BaseException) -> str:
    # Pillow's messages name the problem ("image file is truncated"); keep them short.
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
