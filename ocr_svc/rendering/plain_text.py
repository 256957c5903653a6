"""Plain text: UTF-8, a page's lines joined with "\\n", pages separated by a form feed."""

from __future__ import annotations

from typing import Final

from ocr_svc.rendering.pages import PageContent

PAGE_SEPARATOR: Final = "\f"


def page(content: PageContent, *, first: bool) -> bytes:
    """The page's text, after the separator unless it is the first page."""
    return (("" if first else PAGE_SEPARATOR) + content.text()).encode()
