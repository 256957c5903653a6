"""GET /metrics on the gateway: requests by route template and status, refused uploads by
reason, token failures by reason, and label values that never hold a raw path, an email or
a user id."""

from __future__ import annotations

import httpx

from harness.prometheus import samples, value
from tests.integration.gateway.fakes import ADA


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_count_requests_by_route_template_and_status(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user()
    before = await scrape(client)
    token = mesh.token()
    for _ in range(3):
        assert (await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert (await client.get("/auth/me")).status_code == 401
    after = await scrape(client)

    def delta(**labels: str) -> float:
        return value(after, "http_requests_total", **labels) - value(before, "http_requests_total", **labels)

    assert delta(method="GET", route="/auth/me", status="200") == 3
    assert delta(method="GET", route="/auth/me", status="401") == 1
    assert value(after, "http_request_duration_seconds_count", method="GET", route="/auth/me") >= 4


async def test_a_path_no_route_matches_is_counted_as_unmatched_not_by_its_raw_path(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/no/such/path/12345")).status_code == 404
    text = await scrape(client)
    assert value(text, "http_requests_total", route="unmatched", status="404") >= 1
    assert "12345" not in text


async def test_refused_uploads_are_counted_by_reason(client: httpx.AsyncClient, mesh) -> None:
    headers = {"Authorization": f"Bearer {mesh.token()}"}
    before = await scrape(client)
    not_multipart = await client.post(
        "/ocr", content=b"hello", headers={**headers, "content-type": "text/plain"}
    )
    assert not_multipart.status_code == 415
    not_an_image = await client.post("/ocr/stream", files={"file": ("a.txt", b"just text")}, headers=headers)
    assert not_an_image.status_code == 415
    empty = await client.post("/ocr", files={"file": ("a.png", b"")}, headers=headers)
    assert empty.status_code == 400
    after = await scrape(client)

    def delta(**labels: str) -> float:
        name = "gateway_upload_refusals_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(route="/ocr", reason="not_an_image") == 1
    assert delta(route="/ocr/stream", reason="not_an_image") == 1
    assert delta(route="/ocr", reason="invalid") == 1


async def test_token_failures_are_counted_by_bounded_reason(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user()
    before = await scrape(client)
    expired = await client.get("/auth/me", headers={"Authorization": f"Bearer {mesh.issuer.mint_expired()}"})
    assert expired.status_code == 401
    after = await scrape(client)
    name = "token_verification_failures_total"
    assert value(after, name, reason="expired") - value(before, name, reason="expired") == 1


async def test_no_label_holds_an_email_or_a_user_id(client: httpx.AsyncClient, mesh) -> None:
    mesh.auth.add_user()
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {mesh.token()}"})
    assert me.json()["email"] == ADA["email"]
    text = await scrape(client)
    for _, labels, _ in samples(text):
        for label in labels.values():
            assert "@" not in label
            assert ADA["user_id"] not in label


async def test_metrics_are_not_part_of_the_public_api_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]
