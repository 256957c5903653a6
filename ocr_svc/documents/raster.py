"""Images and multi-page TIFFs as documents: an image is one page; a TIFF's frames are its
pages, read frame by frame (one decoded at a time), each checked as an image is
(`ocr_svc.images`: pixel cap, decoded bytes, compression ratio) before any is decoded."""

from __future__ import annotations

from PIL import Image

from ocr_svc.documents.model import DocumentLimits, DocumentRefused, Offload, SourcePage
from ocr_svc.images import (
    ImageLimits,
    InvalidImage,
    apply_orientation,
    check_header,
    decode_frame,
    decode_image,
    image_dpi,
    open_image,
)
from ocrmesh.rules.document_refusals import DocumentRefusal


class ImageDocument:
    """One image: one page, decoded when it is read."""

    page_count = 1

    def __init__(self, data: bytes, fmt: str, limits: ImageLimits, offload: Offload) -> None:
        self.format = fmt
        self._data: bytes | None = data
        self._limits = limits
        self._offload = offload

    async def page(self, index: int) -> SourcePage:
        if index != 0 or self._data is None:
            raise IndexError(index)
        decoded = await self._offload(decode_image, self._data, self._limits)
        self._data = None  # the upload is not needed any more
        return SourcePage(
            number=1, width=decoded.width, height=decoded.height, dpi=decoded.dpi, pixels=decoded.pixels
        )

    async def aclose(self) -> None:
        self._data = None


class TiffDocument:
    """A TIFF's frames; `open` checks every frame's header (and their count) first."""

    format = "tiff"

    def __init__(
        self, image: Image.Image, page_count: int, upload_bytes: int, limits: ImageLimits, offload: Offload
    ) -> None:
        self.page_count = page_count
        self._image: Image.Image | None = image
        self._upload_bytes = upload_bytes
        self._limits = limits
        self._offload = offload

    @classmethod
    async def open(cls, data: bytes, limits: DocumentLimits, offload: Offload) -> TiffDocument:
        image, count = await offload(_open_frames, data, limits)
        return cls(image, count, len(data), limits.image, offload)

    async def page(self, index: int) -> SourcePage:
        if self._image is None or not 0 <= index < self.page_count:
            raise IndexError(index)
        pixels, dpi = await self._offload(self._decode, self._image, index)
        return SourcePage(
            number=index + 1, width=pixels.shape[1], height=pixels.shape[0], dpi=dpi, pixels=pixels
        )

    def _decode(self, image: Image.Image, index: int) -> tuple[object, float]:
        try:
            image.seek(index)
        except (EOFError, OSError, ValueError) as exc:
            raise DocumentRefused(
                DocumentRefusal.UNREADABLE, f"page {index + 1} of the TIFF is corrupt: {exc}"
            ) from None
        dpi = image_dpi(image)
        pixels, orientation = decode_frame(image, self._upload_bytes, self._limits)
        return apply_orientation(pixels, orientation), dpi

    async def aclose(self) -> None:
        if self._image is not None:
            self._image.close()
            self._image = None


def _open_frames(data: bytes, limits: DocumentLimits) -> tuple[Image.Image, int]:
    """The TIFF opened, and its frame count, every frame's header checked; refusals raised
    before any pixel is decoded (at most `max_pages` + 1 frames are looked at)."""
    image = open_image(data, limits.image, formats=("TIFF",))
    try:
        count = 0
        while True:
            try:
                image.seek(count)
            except EOFError:
                break
            except (OSError, ValueError, SyntaxError) as exc:
                raise DocumentRefused(
                    DocumentRefusal.UNREADABLE, f"page {count + 1} of the TIFF is corrupt: {exc}"
                ) from None
            count += 1
            if count > limits.max_pages:
                raise DocumentRefused(
                    DocumentRefusal.TOO_MANY_PAGES,
                    f"the TIFF has more than {limits.max_pages} pages; this deployment reads at most "
                    f"{limits.max_pages} (OCR_MAX_PAGES)",
                )
            check_header(image, len(data), limits.image, what=f"page {count} of the TIFF")
        if count == 0:
            raise DocumentRefused(DocumentRefusal.UNREADABLE, "the TIFF has no pages")
        image.seek(0)
    except InvalidImage:
        image.close()
        raise
    return image, count
