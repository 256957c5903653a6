"""ocr_svc going away and coming back, as the gateway's clients see it."""

from __future__ import annotations

import time

import httpx
import pytest

from harness.images import sample_multiline_png
from harness.mesh import Mesh
from tests.e2e.conftest import SignedUpUser

pytestmark = pytest.mark.e2e


def test_ocr_down_is_a_quick_503_and_recovers_without_restarting_the_gateway(
    client: httpx.Client, mesh: Mesh, user: SignedUpUser
) -> None:
    files = {"file": ("page.png", sample_multiline_png(), "image/png")}
    assert client.post("/ocr", headers=user.auth, files=files).status_code == 200

    mesh.stop("ocr")
    started = time.monotonic()
    down = client.post("/ocr", headers=user.auth, files=files)
    elapsed = time.monotonic() - started
    assert down.status_code == 503, down.text
    assert elapsed < 10, f"503 took {elapsed:.1f}s"
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200

    mesh.start("ocr")
    mesh.wait_ready("ocr")
    deadline = time.monotonic() + 30
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "gateway never saw ocr_svc come back"
        time.sleep(0.3)
    again = client.post("/ocr", headers=user.auth, files=files)
    assert again.status_code == 200, again.text
