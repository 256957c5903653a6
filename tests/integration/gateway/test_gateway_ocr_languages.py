"""The `languages` form field of /ocr and /ocr/stream (syntax checked at the edge, the codes
passed on to ocr_svc, its refusal a 422 listing what it reads) and GET /ocr/languages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.gateway.fakes import PNG_BYTES, gateway_client

pytestmark = pytest.mark.timeout(60)

PATHS = ["/ocr", "/ocr/stream"]


def bearer(mesh) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.token()}"}


def upload(languages: str | None) -> dict[str, Any]:
    data = {} if languages is None else {"languages": languages}
    return {"files": {"file": ("page.png", PNG_BYTES, "image/png")}, "data": data}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("field", "sent"),
    [(None, []), ("", []), ("vi", ["vi"]), ("vi,en", ["vi", "en"]), (" VI , en ,vi", ["vi", "en"])],
    ids=["absent", "blank", "one", "two", "spaced-upper-repeated"],
)
async def test_the_languages_field_reaches_ocr_svc_as_codes(
    client: httpx.AsyncClient, mesh, path: str, field: str | None, sent: list[str]
) -> None:
    response = await client.post(path, **upload(field), headers=bearer(mesh))
    assert response.status_code == 200, response.text
    assert list(mesh.ocr.requests[-1].languages) == sent


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("field", "says"),
    [
        ("vietnamese", "not an ISO 639-1 language code"),
        ("v1", "not an ISO 639-1 language code"),
        ("vi;en", "not an ISO 639-1 language code"),
        ("vi,,en", "not an ISO 639-1 language code"),
        ("en,vi,de,fr,ko,es", "at most 5 languages"),
        ("en," * 40, "longer than 64 characters"),
    ],
    ids=["word", "digit", "semicolon", "empty-item", "too-many", "too-long"],
)
async def test_a_malformed_languages_field_is_422_and_never_reaches_ocr_svc(
    client: httpx.AsyncClient, mesh, path: str, field: str, says: str
) -> None:
    response = await client.post(path, **upload(field), headers=bearer(mesh))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "languages"]
    assert says in error["msg"]
    assert mesh.ocr.requests == []


@pytest.mark.parametrize("path", PATHS)
async def test_a_language_ocr_svc_does_not_read_is_422_listing_those_it_reads(
    client: httpx.AsyncClient, mesh, path: str
) -> None:
    response = await client.post(path, **upload("ko,en"), headers=bearer(mesh))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "languages"]
    assert "'ko'" in error["msg"]
    assert "this deployment reads: en, vi" in error["msg"]


async def test_a_bad_languages_field_sent_before_a_huge_file_is_refused_before_the_file_is_read(
    mesh,
) -> None:
    limit = 256 * 1024
    boundary = "languages-first"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="languages"\r\n\r\nxx1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        for _ in range(16):  # 4x the limit, chunked: no Content-Length to refuse it by
            yield b"\x00" * (limit // 4)

    async with gateway_client(mesh.settings(gateway_max_upload_bytes=limit)) as client:
        response = await client.post(
            "/ocr",
            content=body(),
            headers={**bearer(mesh), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "languages"]
    assert mesh.ocr.requests == []


async def test_ocr_languages_lists_what_ocr_svc_reads(client: httpx.AsyncClient, mesh) -> None:
    token = mesh.token()
    response = await client.get("/ocr/languages", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "languages": [
            {"code": "en", "name": "English", "engine": "rapidocr"},
            {"code": "vi", "name": "Vietnamese", "engine": "rapidocr+tesseract"},
        ]
    }
    assert mesh.ocr.seen_metadata[-1]["authorization"] == f"Bearer {token}"


async def test_ocr_languages_needs_a_bearer_token(client: httpx.AsyncClient, mesh) -> None:
    response = await client.get("/ocr/languages")
    assert response.status_code == 401
    assert mesh.ocr.seen_metadata == []
