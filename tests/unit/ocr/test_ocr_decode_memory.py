"""Decode memory: the peak of `decode_image` per mode held to the documented bound
(docs/ocr.md, "Concurrency and memory"), the budget and compression-ratio refusals made
from the header, and EXIF orientation applied on the RGB result as Pillow would.

Pillow allocates pixels outside tracemalloc, so the peak is measured as the growth of
ru_maxrss in a fresh interpreter around one decode (imports and plugins warmed first).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageOps

from harness.images import encode, render_text_pil
from ocr_svc.images import (
    ENGINE_LONG_SIDE,
    MAX_COMPRESSION_RATIO,
    SMALL_DECODE_BYTES,
    ImageLimits,
    InvalidImage,
    decode_image,
    decoded_bytes,
)

REPO = Path(__file__).resolve().parents[3]
LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)
# Band conversion and the decoders' own buffers, beyond width x height x bytes per pixel.
SLACK_BYTES = 16 * 1024 * 1024

# One fresh interpreter, imports and decoders warmed up, then a forked child per upload:
# each child's ru_maxrss grows from what it inherits by what its one decode takes.
_MEASURE = """
import io, json, os, resource, sys
from PIL import Image
from ocr_svc.images import ImageLimits, decode_image
limits = ImageLimits(max_bytes=1 << 30, max_pixels=10**9)
for image_format in ("PNG", "JPEG", "TIFF"):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 32), "white").save(buffer, format=image_format)
    decode_image(buffer.getvalue(), limits)
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        decoded = decode_image(data, limits)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = (after - before) * 1024
        os.write(write_end, json.dumps([peak, decoded.width, decoded.height]).encode())
        os._exit(0)
    os.close(write_end)
    print(os.read(read_end, 4096).decode())
    os.waitpid(pid, 0)
"""


def _page(width: int, height: int) -> npt.NDArray[np.uint8]:
    """Light grey with noise: compresses like a scan, not like a bomb."""
    rng = np.random.default_rng(14)
    noise: npt.NDArray[np.uint8] = rng.integers(0, 40, (height, width), dtype=np.uint8)
    return (215 + noise).astype(np.uint8)


def _saved(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _worst_modes() -> dict[str, tuple[bytes, str]]:
    grey = _page(2400, 1700)
    rgb = np.stack([grey] * 3, axis=-1)
    large = Image.new("RGB", (2 * ENGINE_LONG_SIDE + 100, 5000), (230, 230, 230))
    return {
        "16-bit grey PNG": (
            _saved(Image.fromarray(grey.astype(np.uint16) * 257), "PNG", compress_level=1),
            "I;16",
        ),
        "float TIFF": (_saved(Image.fromarray(grey.astype(np.float32) / 255), "TIFF"), "F"),
        "RGBA PNG": (_saved(Image.fromarray(np.dstack([rgb, 255 - grey])), "PNG", compress_level=1), "RGBA"),
        "RGB JPEG": (_saved(Image.fromarray(rgb), "JPEG", quality=80), "RGB"),
        "large JPEG": (_saved(large, "JPEG", quality=80), "RGB"),
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB and fork: Linux")
def test_peak_memory_of_the_worst_modes_stays_within_the_documented_bound(tmp_path: Path) -> None:
    uploads = _worst_modes()
    paths = []
    for k, (data, _mode) in enumerate(uploads.values()):
        paths.append(tmp_path / f"upload-{k}")
        paths[-1].write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, *map(str, paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) == len(uploads)
    for (name, (_data, mode)), (peak, width, height) in zip(uploads.items(), results, strict=True):
        bound = decoded_bytes(mode, width, height) + SLACK_BYTES
        # The old decode took 12-27 bytes per pixel: 2-3 times this bound at 4 Mpx.
        assert peak <= bound, (
            f"{name}: {peak / (width * height):.1f} bytes per pixel at its peak, bound {bound}"
        )
        if name == "large JPEG":
            # Decoded by libjpeg at half scale: the full-size image is never held.
            assert max(width, height) == (2 * ENGINE_LONG_SIDE + 100) // 2


def _reason(data: bytes, limits: ImageLimits = LIMITS) -> str:
    with pytest.raises(InvalidImage) as refused:
        decode_image(data, limits)
    return refused.value.reason


def test_an_image_over_the_decoded_bytes_budget_is_refused_before_decoding() -> None:
    png = _saved(Image.fromarray(_page(400, 300).astype(np.uint16) * 257), "PNG")
    needed = decoded_bytes("I;16", 400, 300)
    assert needed == 400 * 300 * 5
    reason = _reason(png, ImageLimits(max_bytes=10**7, max_pixels=10**6, max_decoded_bytes=needed - 1))
    assert f"needs {needed} bytes to decode" in reason
    assert f"the limit is {needed - 1} bytes" in reason
    decoded = decode_image(png, ImageLimits(max_bytes=10**7, max_pixels=10**6, max_decoded_bytes=needed))
    assert decoded.pixels.shape == (300, 400, 3)


def test_the_default_budget_admits_every_mode_at_the_pixel_limit() -> None:
    limits = ImageLimits(max_bytes=10**7, max_pixels=40_000_000)
    assert limits.decoded_bytes_budget() == 40_000_000 * 7
    assert decoded_bytes("RGBA", 8000, 5000) <= limits.decoded_bytes_budget()


def test_a_tiny_file_claiming_a_huge_image_is_refused_by_its_compression_ratio() -> None:
    # A flat 16-bit page: 6000 x 4000 in a few tens of KB, 120 MB decoded.
    flat = _saved(Image.fromarray(np.full((4000, 6000), 40000, dtype=np.uint16)), "PNG", compress_level=9)
    needed = decoded_bytes("I;16", 6000, 4000)
    assert needed > SMALL_DECODE_BYTES
    assert needed > MAX_COMPRESSION_RATIO * len(flat)
    reason = _reason(flat)
    assert f"would decode to {needed} bytes" in reason
    assert f"more than {MAX_COMPRESSION_RATIO}:1" in reason


def test_a_small_flat_image_is_not_refused_by_its_ratio() -> None:
    flat = _saved(Image.new("L", (2000, 2000), 255), "PNG", compress_level=9)
    assert decoded_bytes("L", 2000, 2000) > MAX_COMPRESSION_RATIO * len(flat)
    assert decode_image(flat, LIMITS).pixels.shape == (2000, 2000, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation: int) -> None:
    image = Image.fromarray(np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3) * 2)
    exif = Image.Exif()
    exif[0x0112] = orientation
    png = _saved(image, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(png))).convert("RGB"))
    assert np.array_equal(decode_image(png, LIMITS).pixels, expected)


@pytest.mark.parametrize(
    "mode",
    ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"],
)
def test_every_mode_converts_like_before(mode: str) -> None:
    """Band conversion gives what the one-step conversion gave (whole-image scaling
    for 16/32-bit and float, alpha over white)."""
    base = render_text_pil(["Mode test 123"], size=22)
    grey = np.asarray(base.convert("L"))
    if mode in ("I;16", "I"):
        image = Image.fromarray(grey.astype(np.uint16) * 200).convert(mode)
    elif mode == "F":
        image = Image.fromarray(grey.astype(np.float32) * 3.5 - 100)
    else:
        image = base.convert(mode)
    image_format = "TIFF" if mode in ("I", "F", "CMYK") else "PNG"
    data = encode(image, image_format)
    decoded = decode_image(data, LIMITS).pixels
    assert decoded.shape == (base.height, base.width, 3)
    if mode in ("I;16", "I", "F"):
        # Scaled to the full 8-bit range from the image's extremes: the text is black on white.
        assert decoded.min() == 0
        assert decoded.max() == 255
        assert np.array_equal(decoded[..., 0] < 128, grey < 128)
    else:
        reference: Image.Image = Image.open(io.BytesIO(data))
        if reference.mode in ("LA", "PA", "RGBA"):
            page = Image.new("RGBA", reference.size, (255, 255, 255, 255))
            page.alpha_composite(reference.convert("RGBA"))
            reference = page
        assert np.abs(decoded.astype(int) - np.asarray(reference.convert("RGB")).astype(int)).max() <= 1
