"""The web page as the gateway serves it (no browser): GET / and its script and style, with the
security headers, nothing inline, nothing from another origin, and out of the OpenAPI schema."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from gateway.__main__ import server_config
from gateway.routes.page import CONTENT_SECURITY_POLICY, STATIC_DIR
from gateway.settings import GatewaySettings
from tests.integration.gateway.conftest import LiveGateway

pytestmark = pytest.mark.timeout(60)

PAGE_ASSETS = {"/static/app.js": "text/javascript", "/static/style.css": "text/css"}


def assert_page_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


class _Markup(HTMLParser):
    """What a Content-Security-Policy without 'unsafe-inline' would refuse, and every link."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.references: list[str] = []
        self.module_scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            if not attributes.get("src"):
                self.inline.append("<script> without src")
            elif attributes.get("type") == "module":
                self.module_scripts.append(str(attributes["src"]))
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
            if name in ("src", "href") and value:
                self.references.append(value)


def parse(html: str) -> _Markup:
    markup = _Markup()
    markup.feed(html)
    return markup


async def test_the_page_is_served_at_the_root_with_its_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_page_headers(response)
    assert "cookie" not in response.headers.get("set-cookie", "").lower()
    markup = parse(response.text)
    assert markup.module_scripts == ["static/app.js"]
    assert "static/style.css" in markup.references
    assert "var/mail/" in response.text  # where `make up` puts the verification code
    head = await client.head("/")
    assert head.status_code == 200
    assert head.content == b""
    assert_page_headers(head)


async def test_the_script_and_style_are_served_with_their_types_and_headers(
    client: httpx.AsyncClient,
) -> None:
    for path, media_type in PAGE_ASSETS.items():
        response = await client.get(path)
        assert response.status_code == 200, path
        # nosniff: a module script must come with a JavaScript type or the browser refuses it.
        assert response.headers["content-type"].split(";")[0] in {media_type, "application/javascript"}, path
        assert_page_headers(response)
        revalidated = await client.get(path, headers={"If-None-Match": response.headers["etag"]})
        assert revalidated.status_code == 304, path


async def test_the_page_runs_nothing_inline_and_fetches_nothing_from_another_origin(
    client: httpx.AsyncClient,
) -> None:
    markup = parse((await client.get("/")).text)
    assert markup.inline == []
    for reference in markup.references:
        assert not urlsplit(reference).netloc, reference
        if reference.startswith("static/"):
            assert (await client.get(f"/{reference}")).status_code == 200, reference
    for asset in STATIC_DIR.iterdir():
        text = asset.read_text()
        # The only absolute URL allowed is the SVG namespace, which names and fetches nothing.
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), asset.name
        assert "innerHTML" not in text, asset.name  # OCR text is only ever set as text


async def test_unknown_and_escaping_static_paths_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/static/missing.js", "/static/%2e%2e/app.py", "/static/..%2fsettings.py"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not Found"}, path


async def test_the_page_stays_out_of_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not any(path.startswith("/static") for path in paths)


async def test_behind_a_proxy_that_strips_a_path_prefix_the_page_and_the_docs_still_work(
    gateway_settings: GatewaySettings, live_gateway: Callable[..., Awaitable[LiveGateway]]
) -> None:
    # A proxy serves the gateway at https://example.org/ocrmesh/ and strips the prefix.
    settings = gateway_settings.model_copy(update={"gateway_root_path": "/ocrmesh"})
    gateway = await live_gateway(settings, config=server_config(settings))
    page_url = "https://example.org/ocrmesh/"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        markup = parse((await client.get("/")).text)
        script = (await client.get("/static/app.js")).text
        # What the browser fetches, resolved against the page's address: all under the prefix.
        called = re.findall(r"""(?:api|fetch)\(\s*["'`]([^"'`]+)""", script)
        assert {"auth/login", "auth/me", "ocr/stream"} <= set(called)
        for reference in [*markup.references, *called]:
            if not reference.startswith(("data:", "#")):
                assert urljoin(page_url, reference).startswith(page_url), reference
        # /docs loads the schema through the proxy, and the schema names the prefix.
        assert "/ocrmesh/openapi.json" in (await client.get("/docs")).text
        assert (await client.get("/openapi.json")).json()["servers"] == [{"url": "/ocrmesh"}]
