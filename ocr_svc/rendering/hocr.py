"""hOCR 1.2 (http://kba.github.io/hocr-spec/1.2/): XHTML whose elements carry OCR
classes and properties in their `title`.

    html > head: ocr-system, ocr-capabilities, ocr-number-of-pages
    body > div.ocr_page     title: image "<file>"; bbox 0 0 W H; ppageno (0-based); scan_res
         > div.ocr_carea    one per layout block, bbox
         > p.ocr_par        the block's lines, bbox
         > span.ocr_line    bbox
         > span.ocrx_word   bbox; x_wconf (0..100)

Every bbox is in pixels of the upright page image the page event describes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from ocr_svc.rendering.pages import PageContent, Rect, clean_text
from ocr_svc.rendering.xml_parts import XML_DECLARATION, element_bytes, frame_parts

XHTML_NS: Final = "http://www.w3.org/1999/xhtml"
_DOCTYPE: Final = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
    '    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
)
CAPABILITIES: Final = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"


def _bbox(rect: Rect) -> str:
    left, top, right, bottom = rect.pixels()
    return f"bbox {left} {top} {right} {bottom}"


def _quoted(name: str) -> str:
    # An hOCR property's string is double-quoted: no quote, backslash or ';' inside.
    return '"' + "".join(c for c in clean_text(name) if c not in '"\\;') + '"'


def frame(system: str, page_count: int) -> tuple[bytes, bytes]:
    """What comes before the first page and after the last."""
    html = ET.Element("html", {"xmlns": XHTML_NS})
    head = ET.SubElement(html, "head")
    ET.SubElement(head, "title").text = "OCR output"
    ET.SubElement(head, "meta", {"http-equiv": "Content-Type", "content": "text/html;charset=utf-8"})
    ET.SubElement(head, "meta", {"name": "ocr-system", "content": clean_text(system)})
    ET.SubElement(head, "meta", {"name": "ocr-capabilities", "content": CAPABILITIES})
    ET.SubElement(head, "meta", {"name": "ocr-number-of-pages", "content": str(page_count)})
    body = ET.SubElement(html, "body")
    before, after = frame_parts(html, body)
    return (XML_DECLARATION + _DOCTYPE).encode() + before, after


def page(content: PageContent, image_name: str) -> bytes:
    """One `ocr_page` and everything on it."""
    event = content.page
    number = content.number
    title = f"image {_quoted(image_name)}; bbox 0 0 {event.width} {event.height}; ppageno {number - 1}"
    if event.dpi > 0:
        title += f"; scan_res {round(event.dpi)} {round(event.dpi)}"
    div = ET.Element("div", {"class": "ocr_page", "id": f"page_{number}", "title": title})
    line_number = word_number = 0
    for block_number, block in enumerate(content.blocks(), start=1):
        rect = block[0].rect
        for line in block[1:]:
            rect = rect.union(line.rect)
        area = ET.SubElement(
            div, "div", {"class": "ocr_carea", "id": f"block_{number}_{block_number}", "title": _bbox(rect)}
        )
        par = ET.SubElement(
            area, "p", {"class": "ocr_par", "id": f"par_{number}_{block_number}", "title": _bbox(rect)}
        )
        for line in block:
            line_number += 1
            span = ET.SubElement(
                par,
                "span",
                {"class": "ocr_line", "id": f"line_{number}_{line_number}", "title": _bbox(line.rect)},
            )
            for word in line.words:
                word_number += 1
                title = f"{_bbox(word.rect)}; x_wconf {round(word.confidence * 100)}"
                element = ET.SubElement(
                    span, "span", {"class": "ocrx_word", "id": f"word_{number}_{word_number}", "title": title}
                )
                element.text = word.text
    return element_bytes(div, level=2)
