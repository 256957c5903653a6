"""Metrics of the running mesh: each service's exposition, and a real Prometheus (Debian's
binary, on a free port, its own data directory, the mesh's alert rules) scraping all four
and answering queries about the traffic this test drives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.images import sample_multiline_png
from harness.mesh import Mesh
from harness.prometheus import PROMETHEUS, PrometheusServer, running_prometheus, samples, value
from tests.e2e.conftest import SignedUpUser

pytestmark = pytest.mark.e2e

SERVICE_METRICS = {
    "gateway": ("http_requests_total", "http_request_duration_seconds", "gateway_upload_refusals_total"),
    "auth_svc": (
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
        "outbox_pending_rows",
        "outbox_oldest_pending_age_seconds",
        "email_publisher_confirms_total",
    ),
    "ocr_svc": (
        "grpc_server_handled_total",
        "grpc_server_streams_in_flight",
        "ocr_calls",
        "ocr_capacity",
        "ocr_time_to_first_line_seconds",
        "ocr_lines_per_page",
        "ocr_engine_phase_seconds",
    ),
    "notifier": ("notifier_messages_total", "notifier_send_seconds"),
}


def ocr_once(client: httpx.Client, user: SignedUpUser) -> None:
    files = {"file": ("page.png", sample_multiline_png(), "image/png")}
    response = client.post("/ocr", headers=user.auth, files=files)
    assert response.status_code == 200, response.text


def exposition(target: str) -> str:
    response = httpx.get(f"http://{target}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def test_every_service_exposes_its_metrics_without_emails_or_user_ids(
    mesh: Mesh, client: httpx.Client, user: SignedUpUser
) -> None:
    ocr_once(client, user)
    user_id = client.get("/auth/me", headers=user.auth).json()["id"]
    for job, target in mesh.metrics_targets.items():
        text = exposition(target)
        for name in SERVICE_METRICS[job]:
            # Declared (a labelled metric shows samples once something happened).
            assert f"# TYPE {name} " in text, f"{job} lacks {name}"
        for _, labels, _ in samples(text):
            for label in labels.values():
                assert "@" not in label, (job, labels)
                assert user_id not in label, (job, labels)
                assert user.token not in label


@pytest.fixture(scope="module")
def prometheus(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    if not Path(PROMETHEUS).exists():
        pytest.skip("Debian's prometheus is not installed (scripts/debian_tools.py test installs it)")
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), mesh.metrics_targets) as server:
        # Every target scraped once before a test reads a count (a "before" read as empty
        # would make an "after" trivially true).
        server.wait_for('count(up{job=~"gateway|auth_svc|ocr_svc|notifier"} == 1) == 4')
        yield server


def test_prometheus_scrapes_every_service_of_the_mesh(prometheus: PrometheusServer) -> None:
    up = prometheus.wait_for('count(up{job=~"gateway|auth_svc|ocr_svc|notifier"} == 1) == 4')
    assert float(up[0]["value"][1]) == 4


def test_prometheus_sees_the_ocr_calls_mail_and_outbox_this_test_drives(
    prometheus: PrometheusServer, client: httpx.Client, user: SignedUpUser
) -> None:
    before = prometheus.wait_for(
        'sum(grpc_server_handled_total{job="ocr_svc", grpc_method="Recognize", grpc_code="OK"}) or vector(0)'
    )
    ocr_once(client, user)
    ocr_once(client, user)
    recognized = prometheus.wait_for(
        'sum(grpc_server_handled_total{job="ocr_svc", grpc_method="Recognize", grpc_code="OK"}) >= '
        f"{float(before[0]['value'][1]) + 2}"
    )
    assert recognized
    # The same calls as the gateway counted them, by route template.
    assert prometheus.wait_for('sum(http_requests_total{job="gateway", route="/ocr", status="200"}) >= 2')
    assert prometheus.wait_for('sum(ocr_lines_per_page_count{job="ocr_svc"}) >= 2')
    assert prometheus.wait_for('sum(ocr_capacity{job="ocr_svc"}) > 0')
    # The outbox is measured by the relay every second: nothing pending once mail went out.
    age = prometheus.wait_for('outbox_oldest_pending_age_seconds{job="auth_svc"}')
    assert float(age[0]["value"][1]) < 60
    assert prometheus.wait_for('outbox_pending_rows{job="auth_svc"}')
    # The user's verification code went through the confirmed publisher and the notifier.
    assert prometheus.wait_for('sum(email_publisher_confirms_total{job="auth_svc", outcome="ack"}) >= 1')
    assert prometheus.wait_for('sum(notifier_messages_total{job="notifier", outcome="delivered"}) >= 1')


def test_prometheus_loads_the_mesh_alert_rules_and_none_fires_on_a_healthy_mesh(
    prometheus: PrometheusServer,
) -> None:
    response = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
    alerts = {rule["name"] for group in response["data"]["groups"] for rule in group["rules"]}
    assert {
        "OcrmeshServiceDown",
        "OcrmeshOutboxStuck",
        "OcrmeshMailParked",
        "OcrmeshOcrQueueSaturated",
    } <= alerts
    prometheus.wait_for("count(up == 1) >= 4")
    assert prometheus.query('ALERTS{alertstate="firing"}') == []


def test_the_refused_uploads_are_counted_by_reason(
    mesh: Mesh, client: httpx.Client, user: SignedUpUser
) -> None:
    gateway = mesh.metrics_targets["gateway"]
    before = value(exposition(gateway), "gateway_upload_refusals_total", route="/ocr", reason="not_an_image")
    refused = client.post(
        "/ocr", headers=user.auth, files={"file": ("notes.txt", b"plain text", "text/plain")}
    )
    assert refused.status_code == 415
    after = value(exposition(gateway), "gateway_upload_refusals_total", route="/ocr", reason="not_an_image")
    assert after == before + 1
