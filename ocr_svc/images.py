"""Validation and decoding of uploaded images, in memory (no files, no shared scratch).

Checks run cheapest first: the byte size, then the header (format allow-list, pixel
count, the decoded bytes against the budget, the compression ratio, so a decompression
bomb is refused before any pixel is decoded), then the full decode, which finds truncated
or corrupt data.

Memory: the decoder's image (1 byte per pixel for grey, palette and bilevel images, 2 for
16-bit grey, 4 for the rest: Pillow stores RGB in 4) plus the RGB result (3), converted a
band of rows at a time, so no second full-size copy is made in between. A large JPEG is
decoded at a reduced scale by libjpeg itself (`Image.draft`) when it stays larger than the
engine needs. docs/ocr.md has the measured figures.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, UnidentifiedImageError

from ocr_svc.engines.base import RgbImage
from ocrmesh.rules.document_refusals import DocumentRefusal

# Pillow format names accepted; everything else (GIF, PDF, SVG, ...) is refused.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")

# Bytes per pixel at the peak of a decode: the decoder's image plus the RGB result.
RGB_BYTES_PER_PIXEL = 3
_STORAGE_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_WIDE_STORAGE_BYTES_PER_PIXEL = 4  # every other mode (RGB, RGBA, LA, I, F, CMYK, ...)
# The worst mode's peak: the default budget is the pixel limit at this cost.
PEAK_BYTES_PER_PIXEL = _WIDE_STORAGE_BYTES_PER_PIXEL + RGB_BYTES_PER_PIXEL

# Decoded bytes (as `decoded_bytes` counts them) per uploaded byte above which a large
# image is refused. Deflate tops out near 1032:1 of raw pixel bytes, which count 2-4
# times over in decoded bytes, so a flat, made-up image reaches 2000-4000:1; photographs
# and scans (noise, text) stay far below 1000:1. Images decoding to at most
# SMALL_DECODE_BYTES are not checked, so a small blank page is never refused for it.
MAX_COMPRESSION_RATIO = 1000
SMALL_DECODE_BYTES = 64 * 1024 * 1024

# A JPEG is reduced by libjpeg (1/2, 1/4, 1/8) only as far as its long side stays at least
# this many pixels (A4 at 300 dpi): detection works on 960 px, recognition on crops of
# text lines, and a page this size keeps 10 pt text legible.
ENGINE_LONG_SIDE = 3508

# Rows converted at a time: bands of about 1 MiB of the decoder's image (the
# conversion of one band takes a few times that, transiently).
_BAND_BYTES = 1024 * 1024


class InvalidImage(Exception):
    """The upload is not an image we accept. `reason` is safe to return to the caller;
    `refusal` says why for machines (`ocrmesh.rules.document_refusals`; None for a refusal
    none of its reasons names, such as the byte limit, which the edge checks first)."""

    def __init__(self, reason: str, refusal: DocumentRefusal | None = DocumentRefusal.UNREADABLE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refusal = refusal


@dataclass(frozen=True)
class ImageLimits:
    """What the service accepts. `max_decoded_bytes` is the memory one decode may take
    at its peak (the decoder's image plus the RGB result), estimated from the header
    before any pixel is decoded; None = `max_pixels` x `PEAK_BYTES_PER_PIXEL`."""

    max_bytes: int
    max_pixels: int
    max_decoded_bytes: int | None = None

    def decoded_bytes_budget(self) -> int:
        """The most bytes one decode may hold at its peak."""
        if self.max_decoded_bytes is not None:
            return self.max_decoded_bytes
        return self.max_pixels * PEAK_BYTES_PER_PIXEL


@dataclass(frozen=True)
class DecodedImage:
    """Pixels ready for an engine."""

    pixels: RgbImage
    width: int
    height: int
    format: str
    # Pixels per inch the file says it has (0.0: it does not say).
    dpi: float = 0.0


def decode_image(data: bytes, limits: ImageLimits) -> DecodedImage:
    """Decode `data` into RGB pixels, or raise `InvalidImage` with the reason."""
    if not data:
        raise InvalidImage("the image is empty")
    if len(data) > limits.max_bytes:
        raise InvalidImage(f"the image is {len(data)} bytes; the limit is {limits.max_bytes} bytes", None)
    # The decoder's image lives only inside _decode_upright: it is freed before the
    # orientation is applied, which copies the RGB result.
    pixels, orientation, image_format, dpi = _decode_upright(data, limits)
    pixels = _apply_orientation(pixels, orientation)
    return DecodedImage(
        pixels=pixels, width=pixels.shape[1], height=pixels.shape[0], format=image_format, dpi=dpi
    )


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes a decode of a `mode` image of `width` x `height` holds at its peak."""
    storage = _STORAGE_BYTES_PER_PIXEL.get(mode, _WIDE_STORAGE_BYTES_PER_PIXEL)
    return width * height * (storage + RGB_BYTES_PER_PIXEL)


def open_image(data: bytes, limits: ImageLimits, formats: tuple[str, ...] = ALLOWED_FORMATS) -> Image.Image:
    """`data` opened by Pillow, its header read and no pixel decoded; raises `InvalidImage`."""
    try:
        # Reads the header only; `formats` keeps Pillow from trying any other decoder.
        return Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        raise InvalidImage(
            "not an image in an accepted format (PNG, JPEG, WebP, TIFF, BMP)",
            DocumentRefusal.UNSUPPORTED_FORMAT,
        ) from None
    except Image.DecompressionBombError:
        raise InvalidImage(
            f"the image has too many pixels; the limit is {limits.max_pixels}", DocumentRefusal.PAGE_TOO_LARGE
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"the image header is corrupt: {_describe(exc)}") from None


def check_header(image: Image.Image, upload_bytes: int, limits: ImageLimits, what: str = "the image") -> None:
    """The checks of the current frame's header, before any pixel is decoded: pixel count,
    decoded bytes, compression ratio of `upload_bytes`. Raises `InvalidImage`."""
    _check_pixels(image, limits, what)
    _check_decoded_size(image, upload_bytes, limits, what)


def _check_pixels(image: Image.Image, limits: ImageLimits, what: str) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"{what} has no pixels")
    if width * height > limits.max_pixels:
        raise InvalidImage(
            f"{what} is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}",
            DocumentRefusal.PAGE_TOO_LARGE,
        )


def decode_frame(image: Image.Image, upload_bytes: int, limits: ImageLimits) -> tuple[RgbImage, int]:
    """The current frame of the open `image` as RGB, checked as `check_header` does, and
    its EXIF orientation. Raises `InvalidImage`."""
    _check_pixels(image, limits, "the image")
    _reduce_large_jpeg(image)
    _check_decoded_size(image, upload_bytes, limits)
    try:
        image.load()
        orientation = _orientation(image)
        pixels = _to_rgb(image)
    except Image.DecompressionBombError:
        raise InvalidImage(
            f"the image has too many pixels; the limit is {limits.max_pixels}", DocumentRefusal.PAGE_TOO_LARGE
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise InvalidImage(f"the image data is corrupt or truncated: {_describe(exc)}") from None
    return pixels, orientation


def _decode_upright(data: bytes, limits: ImageLimits) -> tuple[RgbImage, int, str, float]:
    with open_image(data, limits) as image:
        image_format = image.format or "?"
        dpi, stored_width = image_dpi(image), image.size[0]
        pixels, orientation = decode_frame(image, len(data), limits)
    # A large JPEG decoded at a reduced scale has fewer pixels per inch.
    return pixels, orientation, image_format, round(dpi * pixels.shape[1] / stored_width, 2)


def image_dpi(image: Image.Image) -> float:
    """The horizontal resolution `image`'s header states, 0.0 when it states none (or nonsense)."""
    value = image.info.get("dpi")
    try:
        dpi = float(value[0]) if isinstance(value, tuple) else 0.0
    except (TypeError, ValueError):
        return 0.0
    return dpi if 1.0 <= dpi <= 10000.0 else 0.0


def apply_orientation(pixels: RgbImage, orientation: int) -> RgbImage:
    """`pixels` turned upright as EXIF orientation `orientation` (1-8) says."""
    return _apply_orientation(pixels, orientation)


def _reduce_large_jpeg(image: Image.Image) -> None:
    if image.format != "JPEG":
        return
    width, height = image.size
    long_side = max(width, height)
    if long_side < 2 * ENGINE_LONG_SIDE:
        return
    # libjpeg picks the smallest of 1/2, 1/4, 1/8 that keeps at least the requested size,
    # and decodes at that scale: the full-size image is never held.
    scale = ENGINE_LONG_SIDE / long_side
    image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))


def _check_decoded_size(
    image: Image.Image, upload_bytes: int, limits: ImageLimits, what: str = "the image"
) -> None:
    width, height = image.size
    needed = decoded_bytes(image.mode, width, height)
    budget = limits.decoded_bytes_budget()
    if needed > budget:
        raise InvalidImage(
            f"{what} ({width}x{height}, mode {image.mode}) needs {needed} bytes to decode; "
            f"the limit is {budget} bytes",
            DocumentRefusal.PAGE_TOO_LARGE,
        )
    if needed > SMALL_DECODE_BYTES and needed > MAX_COMPRESSION_RATIO * upload_bytes:
        # A decompression bomb: refused as unreadable, whatever its size.
        raise InvalidImage(
            f"{what} is {upload_bytes} bytes but would decode to {needed} bytes "
            f"({needed // upload_bytes}:1); more than {MAX_COMPRESSION_RATIO}:1 is refused "
            f"above {SMALL_DECODE_BYTES} decoded bytes"
        )


def _orientation(image: Image.Image) -> int:
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(pixels: RgbImage, orientation: int) -> RgbImage:
    """`pixels` turned upright as EXIF orientation `orientation` says (the same result as
    `ImageOps.exif_transpose`), with one copy, of the RGB result only."""
    if orientation == 1:
        return pixels
    views = {
        2: pixels[:, ::-1],
        3: pixels[::-1, ::-1],
        4: pixels[::-1],
        5: pixels.transpose(1, 0, 2),
        6: np.rot90(pixels, -1),
        7: pixels[::-1, ::-1].transpose(1, 0, 2),
        8: np.rot90(pixels, 1),
    }
    return np.ascontiguousarray(views[orientation])


def _to_rgb(image: Image.Image) -> RgbImage:
    """The loaded `image` as RGB, converted a band of rows at a time into the result."""
    width, height = image.size
    mode = image.mode
    rgb: RgbImage = np.empty((height, width, 3), dtype=np.uint8)
    transparent = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info)
    low, high = 0.0, 0.0
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        extrema = image.getextrema()
        low, high = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]
    band_rows = max(1, _BAND_BYTES // (4 * width))
    for top in range(0, height, band_rows):
        bottom = min(height, top + band_rows)
        band = image.crop((0, top, width, bottom))
        out = rgb[top:bottom]
        if transparent:
            _composite_on_white(np.asarray(band.convert("RGBA")), out)
        elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            # 16/32-bit greyscale (scans as TIFF): scale to 8 bits instead of clipping.
            _grey_into(_scaled(np.asarray(band), 0.0, high or 1.0), out)
        elif mode == "F":
            _grey_into(_scaled(np.asarray(band), low, (high - low) or 1.0), out)
        elif mode in ("L", "1"):
            _grey_into(np.asarray(band if mode == "L" else band.convert("L")), out)
        elif mode == "RGB":
            out[...] = np.asarray(band)
        else:
            out[...] = np.asarray(band.convert("RGB"))
    return rgb


def _grey_into(grey: npt.NDArray[np.uint8], out: RgbImage) -> None:
    """`grey` copied into each channel of `out` (OpenCV: a page of 3.6 MP in 1.3 ms, where
    numpy's broadcast took 21 ms)."""
    cv2.cvtColor(np.ascontiguousarray(grey, dtype=np.uint8), cv2.COLOR_GRAY2RGB, dst=out)


def _scaled(values: npt.NDArray[Any], low: float, spread: float) -> npt.NDArray[np.uint8]:
    band = values.astype(np.float32)
    band -= low
    band *= 255.0 / spread
    np.clip(band, 0.0, 255.0, out=band)
    return band.astype(np.uint8)


def _composite_on_white(rgba: npt.NDArray[np.uint8], out: RgbImage) -> None:
    # Transparent areas become white: text drawn on a transparent background is usually
    # meant to be seen on a light page.
    alpha = rgba[..., 3:4].astype(np.uint16)
    colour = rgba[..., :3].astype(np.uint16)
    out[...] = (colour * alpha + 255 * (255 - alpha) + 127) // 255


def _describe(exc: BaseException) -> str:
    # Pillow's messages name the problem ("image file is truncated"); keep them short.
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
