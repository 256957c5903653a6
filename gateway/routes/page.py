"""`GET /`: the web page (gateway/static/: plain HTML, CSS and one ES module, no build step)
that signs a user up and in and streams an image's text over it, line box by line box.

The page talks to the same REST routes as any client; its token lives in the tab's
sessionStorage and travels as a bearer header, never as a cookie, so no route has CSRF to
defend against. Every page response carries a Content-Security-Policy that lets the page run
only its own script and style (no inline code, nothing from another origin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH: Final = "/static"

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (a cheap 304 through the ETag), so a new release is seen at once.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"], response_class=FileResponse)
async def index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS
    )


class PageFiles(StaticFiles):
    """StaticFiles (ETag, 304, HEAD, no path escapes) with the page's security headers."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(PAGE_HEADERS)
        return response


def add_page(app: FastAPI) -> None:
    """Serve the page at `/` and its script and style under `/static/`."""
    app.include_router(router)
    app.mount(STATIC_PATH, PageFiles(directory=STATIC_DIR), name="static")
