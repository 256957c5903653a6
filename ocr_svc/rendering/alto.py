"""ALTO 4 (https://www.loc.gov/standards/alto/), namespace
http://www.loc.gov/standards/alto/ns-v4# :

    alto > Description: MeasurementUnit "pixel", sourceImageInformation/fileName,
                        OCRProcessing/ocrProcessingStep/processingSoftware
         > Layout > Page (ID, PHYSICAL_IMG_NR 1-based, WIDTH, HEIGHT)
                  > PrintSpace (the whole page)
                  > TextBlock (one per layout block) > TextLine
                  > String (CONTENT, HPOS, VPOS, WIDTH, HEIGHT, WC 0..1), SP between strings

Positions are in pixels of the upright page image the page event describes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from ocr_svc.rendering.pages import PageContent, Rect, clean_text
from ocr_svc.rendering.xml_parts import XML_DECLARATION, element_bytes, frame_parts, number

ALTO_NS: Final = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA_LOCATION: Final = f"{ALTO_NS} http://www.loc.gov/alto/v4/alto-4-2.xsd"
_XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"


def _position(rect: Rect) -> dict[str, str]:
    return {
        "HPOS": number(rect.left),
        "VPOS": number(rect.top),
        "WIDTH": number(rect.width),
        "HEIGHT": number(rect.height),
    }


def frame(system: str, file_name: str) -> tuple[bytes, bytes]:
    """What comes before the first page and after the last."""
    alto = ET.Element("alto", {"xmlns": ALTO_NS, f"{{{_XSI}}}schemaLocation": SCHEMA_LOCATION})
    description = ET.SubElement(alto, "Description")
    ET.SubElement(description, "MeasurementUnit").text = "pixel"
    source = ET.SubElement(description, "sourceImageInformation")
    ET.SubElement(source, "fileName").text = clean_text(file_name)
    processing = ET.SubElement(description, "OCRProcessing", {"ID": "OCR_0"})
    step = ET.SubElement(processing, "ocrProcessingStep")
    software = ET.SubElement(step, "processingSoftware")
    ET.SubElement(software, "softwareName").text = clean_text(system)
    layout = ET.SubElement(alto, "Layout")
    before, after = frame_parts(alto, layout)
    return XML_DECLARATION.encode() + before, after


def page(content: PageContent) -> bytes:
    """One `Page` and everything on it."""
    event = content.page
    page_id = f"page_{content.number}"
    element = ET.Element(
        "Page",
        {
            "ID": page_id,
            "PHYSICAL_IMG_NR": str(content.number),
            "WIDTH": str(event.width),
            "HEIGHT": str(event.height),
        },
    )
    space = ET.SubElement(element, "PrintSpace", _position(Rect(0, 0, event.width, event.height)))
    line_number = word_number = 0
    for block_number, block in enumerate(content.blocks(), start=1):
        rect = block[0].rect
        for line in block[1:]:
            rect = rect.union(line.rect)
        text_block = ET.SubElement(
            space, "TextBlock", {"ID": f"{page_id}_block_{block_number}", **_position(rect)}
        )
        for line in block:
            line_number += 1
            text_line = ET.SubElement(
                text_block, "TextLine", {"ID": f"{page_id}_line_{line_number}", **_position(line.rect)}
            )
            for index, word in enumerate(line.words):
                if index:
                    previous = line.words[index - 1].rect
                    gap = Rect(
                        previous.right, previous.top, max(word.rect.left, previous.right), previous.bottom
                    )
                    ET.SubElement(
                        text_line,
                        "SP",
                        {"WIDTH": number(gap.width), "HPOS": number(gap.left), "VPOS": number(gap.top)},
                    )
                word_number += 1
                ET.SubElement(
                    text_line,
                    "String",
                    {
                        "ID": f"{page_id}_word_{word_number}",
                        "CONTENT": word.text,
                        **_position(word.rect),
                        "WC": f"{word.confidence:.4f}",
                    },
                )
    return element_bytes(element, level=2)
