"""XML documents written a page at a time with the standard library's ElementTree (no
markup is ever put together from strings): the document's frame is built once around a
marker comment and cut there into the part before the pages and the part after them;
each page is its own element, serialised as it is complete.

A page's elements carry no namespace of their own: they inherit the default namespace
the frame's root declares (`xmlns` on the root), as any XML reader resolves it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
_MARKER: Final = "ocrmesh-pages"


def frame_parts(root: ET.Element, pages_parent: ET.Element) -> tuple[bytes, bytes]:
    """The document `root` cut where the pages go (inside `pages_parent`): the bytes
    before the first page and after the last. `prologue` (declaration, doctype) is
    the caller's to prepend."""
    pages_parent.append(ET.Comment(_MARKER))
    ET.indent(root, space=" ")
    text = ET.tostring(root, encoding="unicode")
    head, _, tail = text.partition(f"<!--{_MARKER}-->")
    return head.rstrip(" ").encode(), (tail.lstrip("\n") + "\n").encode()


def element_bytes(element: ET.Element, level: int) -> bytes:
    """One page's element, indented as a child at `level` of the frame."""
    ET.indent(element, space=" ", level=level)
    return (" " * level + ET.tostring(element, encoding="unicode") + "\n").encode()


def number(value: float) -> str:
    """A position or size in whole pixels, as XML attributes carry them."""
    return str(round(value))
