"""A searchable PDF: every page of the input kept as it is (a PDF's own page objects; an
image's pixels on a page of the image's size at its resolution), with the text layer of
its words (`text_layer`) grafted on as a form XObject placed by the matrix that maps the
upright page onto the original one (`geometry`), as OCRmyPDF grafts its text layers.

Memory: a PDF input is edited in place: pikepdf reads its pages' streams from the input's
bytes when it writes the result, so they are never copied. An image input's pages are
one-page PDFs in anonymous temporary files (`spool_dir`), read back from there when the
result is written. The result goes to an anonymous temporary file the caller streams from
and closes (which deletes it). Pages whose text came from the PDF's own text layer
(`source` "text_layer") get no second one.
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass
from typing import IO, Any, Final

import pikepdf
from fpdf import FPDF
from PIL import Image, ImageOps, UnidentifiedImageError

from ocr_svc.rendering.geometry import DEFAULT_DPI, Affine, PageGeometry
from ocr_svc.rendering.pages import PageContent, RenderingFailed
from ocr_svc.rendering.text_layer import TextLayers

_log = logging.getLogger(__name__)

# Image modes fpdf2 embeds (a bilevel image as CCITT G4, as a scanner writes it); others
# (16-bit, integer, float grey) are converted to 8-bit grey.
_EMBEDDED_MODES: Final = frozenset({"1", "L", "LA", "RGB", "RGBA", "P", "PA", "CMYK"})


@dataclass(frozen=True)
class _Placement:
    page_index: int
    layer_index: int
    matrix: Affine


def _inherited(page: pikepdf.Dictionary, key: str) -> pikepdf.Object | None:
    """A page attribute, from the page or the nearest /Pages node above it."""
    node: pikepdf.Object | None = page
    for _ in range(64):  # a /Parent chain is short; a cycle must not hang us
        if node is None or not isinstance(node, pikepdf.Dictionary):
            return None
        if key in node:
            return node[key]
        node = node.get("/Parent")
    return None


def _page_box(page: pikepdf.Page) -> tuple[float, float, float, float]:
    box = _inherited(page.obj, "/CropBox") or _inherited(page.obj, "/MediaBox")
    if not isinstance(box, pikepdf.Array) or len(box) != 4:
        raise RenderingFailed("a page of the PDF has no valid MediaBox")
    x0, y0, x1, y1 = (float(value) for value in box)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _page_rotate(page: pikepdf.Page) -> int:
    rotate = _inherited(page.obj, "/Rotate")
    try:
        return int(rotate) % 360 if rotate is not None else 0
    except (TypeError, ValueError):
        return 0


class SearchablePdf:
    """Assembles the searchable PDF: `add_page` for each page as its events are in (in a
    worker thread: it is CPU work), then `finish` writes the result to a temporary file.
    `close` releases everything (`finish` does not)."""

    def __init__(self, document: bytes, document_format: str, spool_dir: str | None = None) -> None:
        self._spool_dir = spool_dir
        self._layers = TextLayers()
        self._placements: list[_Placement] = []
        self._spooled: list[tuple[IO[bytes], pikepdf.Pdf]] = []
        self._image: Image.Image | None = None
        try:
            if document_format == "pdf" or document.startswith(b"%PDF"):
                self._pdf = pikepdf.open(io.BytesIO(document))
            else:
                self._image = Image.open(io.BytesIO(document))
                self._pdf = pikepdf.new()
        except (pikepdf.PdfError, pikepdf.PasswordError, UnidentifiedImageError, OSError) as error:
            _log.warning("the document cannot be opened for rendering", extra={"error": str(error)})
            raise RenderingFailed("the document cannot be opened for rendering") from None
        self._document = document

    def add_page(self, content: PageContent) -> None:
        """The page's text layer drawn, and for an image the page itself made."""
        index = content.number - 1
        if self._image is not None:
            while len(self._pdf.pages) <= index:
                self._append_image_page(
                    len(self._pdf.pages), content if len(self._pdf.pages) == index else None
                )
            geometry = self._image_geometry(index, content)
        else:
            if index >= len(self._pdf.pages):
                raise RenderingFailed(f"page {content.number} is not in the document")
            if content.page.source == "text_layer":
                return
            geometry = self._pdf_geometry(self._pdf.pages[index], content)
        layer = self._layers.add(content, geometry)
        self._placements.append(_Placement(index, layer, geometry.text_layer_matrix()))

    def finish(self, page_count: int | None = None) -> IO[bytes]:
        """The whole PDF in an anonymous temporary file, positioned at its start. An
        image's frames that had no page event are kept too, up to `page_count`."""
        if self._image is not None:
            frames = getattr(self._image, "n_frames", 1)
            while len(self._pdf.pages) < min(frames, page_count or frames):
                self._append_image_page(len(self._pdf.pages), None)
        result = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115 (returned open)
        layers = pikepdf.open(io.BytesIO(self._layers.output())) if self._placements else None
        try:
            for placement in self._placements:
                assert layers is not None
                self._graft(placement, layers)
            self._pdf.save(result)
            result.seek(0)
        except BaseException:
            result.close()
            raise
        finally:
            if layers is not None:
                layers.close()
        return result

    def close(self) -> None:
        self._pdf.close()
        for file, pdf in self._spooled:
            pdf.close()
            file.close()
        self._spooled.clear()
        if self._image is not None:
            self._image.close()

    # -- a PDF's pages

    def _pdf_geometry(self, page: pikepdf.Page, content: PageContent) -> PageGeometry:
        event = content.page
        box = _page_box(page)
        rotate = _page_rotate(page)
        dpi = event.dpi
        if dpi <= 0:
            # Rendered at a resolution it does not state: the one that makes its width.
            shown_width = (box[3] - box[1]) if rotate % 180 else (box[2] - box[0])
            turned_width = event.height if event.rotation % 180 else event.width
            dpi = 72.0 * turned_width / shown_width if shown_width > 0 else DEFAULT_DPI
        return PageGeometry(event.width, event.height, event.rotation, event.skew, dpi, box, rotate)

    def _graft(self, placement: _Placement, layers: pikepdf.Pdf) -> None:
        page = self._pdf.pages[placement.page_index]
        form = self._pdf.copy_foreign(layers.pages[placement.layer_index].as_form_xobject())
        if "/Resources" not in page.obj:
            inherited = _inherited(page.obj, "/Resources")
            page.obj.Resources = (
                pikepdf.Dictionary({str(key): value for key, value in inherited.items()})
                if isinstance(inherited, pikepdf.Dictionary)
                else pikepdf.Dictionary()
            )
        name = page.add_resource(form, pikepdf.Name.XObject, prefix="OCR")
        # The page's own drawing in q ... Q, so that a graphics state it leaves changed
        # does not move the text layer.
        page.contents_add(pikepdf.unparse_content_stream([([], pikepdf.Operator("q"))]), prepend=True)
        draw: list[Any] = [
            ([], pikepdf.Operator("Q")),
            ([], pikepdf.Operator("q")),
            (list(placement.matrix.values()), pikepdf.Operator("cm")),
            ([name], pikepdf.Operator("Do")),
            ([], pikepdf.Operator("Q")),
        ]
        page.contents_add(pikepdf.unparse_content_stream(draw), prepend=False)

    # -- an image's pages

    def _frame(self, index: int) -> Image.Image:
        assert self._image is not None
        try:
            self._image.seek(index)
        except EOFError:
            raise RenderingFailed(f"page {index + 1} is not in the document") from None
        frame = ImageOps.exif_transpose(self._image)
        if frame.mode not in _EMBEDDED_MODES:
            frame = frame.convert("L")
        return frame

    def _image_scale(self, frame_size: tuple[int, int], content: PageContent | None) -> float:
        """Points per pixel of the frame: 72/dpi of the page event, over the frame's pixels
        per event pixel (ocr_svc may read a large JPEG reduced: the ratio of the long
        sides, where it is not the few percent a straightening adds). A frame without
        events: its own resolution."""
        if content is None:
            assert self._image is not None
            own = self._image.info.get("dpi", (0, 0))
            dpi = float(own[0]) if isinstance(own, tuple) and own else 0.0
            return 72.0 / (dpi if dpi > 0 else DEFAULT_DPI)
        event = content.page
        turned = max(event.width, event.height)
        ratio = max(frame_size) / turned if turned > 0 else 1.0
        reduction = ratio if not 0.8 <= ratio <= 1.25 else 1.0
        dpi = event.dpi if event.dpi > 0 else DEFAULT_DPI
        return 72.0 / dpi / reduction

    def _append_image_page(self, index: int, content: PageContent | None) -> None:
        frame = self._frame(index)
        points = self._image_scale(frame.size, content)
        size = (frame.width * points, frame.height * points)
        maker = FPDF(unit="pt")
        maker.set_creator("ocrmesh")
        maker.add_page(format=size)
        source: Image.Image | io.BytesIO = frame
        assert self._image is not None
        if self._image.format == "JPEG" and frame.mode in ("L", "RGB", "CMYK") and self._exif_upright():
            source = io.BytesIO(self._document)  # embedded as it is (DCTDecode), not re-encoded
        maker.image(source, x=0, y=0, w=size[0], h=size[1])
        spool = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115 (open until saved)
        try:
            spool.write(bytes(maker.output()))
            spool.seek(0)
            page_pdf = pikepdf.open(spool)
        except BaseException:
            spool.close()
            raise
        self._spooled.append((spool, page_pdf))
        self._pdf.pages.append(page_pdf.pages[0])

    def _exif_upright(self) -> bool:
        assert self._image is not None
        return int(self._image.getexif().get(0x0112, 1)) == 1

    def _image_geometry(self, index: int, content: PageContent) -> PageGeometry:
        # The page is the image at the event's scale (`_image_scale`): 72/dpi points an
        # event pixel.
        event = content.page
        dpi = event.dpi if event.dpi > 0 else DEFAULT_DPI
        box = _page_box(self._pdf.pages[index])
        return PageGeometry(event.width, event.height, event.rotation, event.skew, dpi, box, 0)
