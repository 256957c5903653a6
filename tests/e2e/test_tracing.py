"""Tracing across the mesh: the four processes export with the real OpenTelemetry SDK and
OTLP/HTTP exporter to a receiver in this test, and one trace runs from the REST request
through gRPC, the outbox and RabbitMQ to the notifier's send."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from harness.images import sample_multiline_png
from harness.mesh import Mesh, running_mesh
from harness.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from notifier.mailbox import OCR_COMPLETED, VERIFICATION_CODE, wait_for_mail
from tests.e2e.conftest import SignedUpUser, random_email, sign_up

pytestmark = pytest.mark.e2e

SERVER, PRODUCER, CONSUMER = 2, 4, 5  # OTLP's SpanKind numbers


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced_mesh(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_admin_url: str,
    rabbitmq_url: str,
    receiver: OtlpReceiver,
) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("traced-mesh")
    tracing_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        # Batches out every 200 ms instead of 5 s: the test waits less.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    with running_mesh(
        workdir, postgres_admin_url=postgres_admin_url, rabbitmq_url=rabbitmq_url, extra_env=tracing_env
    ) as running:
        yield running


@pytest.fixture(scope="module")
def traced_client(traced_mesh: Mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=traced_mesh.gateway_url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def traced_user(traced_mesh: Mesh, traced_client: httpx.Client) -> SignedUpUser:
    return sign_up(traced_client, traced_mesh.mail_dir)


def request_trace(spans: list[ReceivedSpan], request_id: str, route: str) -> str:
    """The trace id of the gateway's server span for the request `request_id` on `route`."""
    for span in spans:
        if (
            span.service == "gateway"
            and span.kind == SERVER
            and span.attributes.get("ocrmesh.request_id") == request_id
            and span.attributes.get("http.route") == route
        ):
            return span.trace_id
    raise AssertionError(f"no gateway span for request {request_id} on {route}")


def names_in(spans: list[ReceivedSpan], trace_id: str) -> set[tuple[str, str]]:
    return {(s.service, s.name) for s in spans if s.trace_id == trace_id}


def trace_with(request_id: str, *wanted: tuple[str, str]) -> Callable[[list[ReceivedSpan]], bool]:
    """Whether a trace of the request `request_id` holds every (service, span name) `wanted`."""

    def check(spans: list[ReceivedSpan]) -> bool:
        ids = {s.trace_id for s in spans if s.attributes.get("ocrmesh.request_id") == request_id}
        return any(set(wanted) <= names_in(spans, trace_id) for trace_id in ids)

    return check


def test_one_trace_runs_from_register_to_the_notifiers_send(
    traced_mesh: Mesh, traced_client: httpx.Client, receiver: OtlpReceiver
) -> None:
    email = random_email()
    registered = traced_client.post(
        "/auth/register", json={"name": "Ada", "email": email, "password": "correct horse battery"}
    )
    assert registered.status_code == 202, registered.text
    request_id = registered.headers["x-request-id"]
    wait_for_mail(traced_mesh.mail_dir, email, kind=VERIFICATION_CODE)

    wanted = {
        ("gateway", "POST /auth/register"),
        ("gateway", "/ocrmesh.auth.v1.AuthService/Register"),
        ("auth_svc", "/ocrmesh.auth.v1.AuthService/Register"),
        ("auth_svc", "outbox publish"),
        ("notifier", "notifier deliver"),
        ("notifier", "mail send"),
    }
    spans = receiver.wait_for(trace_with(request_id, *wanted))
    trace_id = request_trace(spans, request_id, "/auth/register")
    in_trace = [s for s in spans if s.trace_id == trace_id]
    assert wanted <= {(s.service, s.name) for s in in_trace}
    # The database statements of the registration are in it too.
    assert any(s.service == "auth_svc" and "db.system" in s.attributes for s in in_trace)
    by_name = {(s.service, s.name): s for s in in_trace}
    publish, deliver = by_name[("auth_svc", "outbox publish")], by_name[("notifier", "notifier deliver")]
    assert publish.kind == PRODUCER
    assert deliver.kind == CONSUMER
    assert deliver.parent_span_id == publish.span_id
    assert by_name[("notifier", "mail send")].parent_span_id == deliver.span_id
    assert deliver.attributes["ocrmesh.request_id"] == request_id


def test_one_trace_runs_from_an_ocr_stream_to_the_completion_mail(
    traced_mesh: Mesh, traced_client: httpx.Client, traced_user: SignedUpUser, receiver: OtlpReceiver
) -> None:
    files = {"file": ("page.png", sample_multiline_png(), "image/png")}
    with traced_client.stream("POST", "/ocr/stream", headers=traced_user.auth, files=files) as response:
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line.strip()]
        request_id = response.headers["x-request-id"]
    assert events[-1]["type"] == "completed"
    wait_for_mail(traced_mesh.mail_dir, traced_user.email, kind=OCR_COMPLETED)

    recognize = "/ocrmesh.ocr.v1.OcrService/Recognize"
    wanted = {
        ("gateway", "POST /ocr/stream"),
        ("gateway", "gateway.upload.read"),
        ("gateway", recognize),
        ("ocr_svc", recognize),
        ("ocr_svc", "ocr.queue_wait"),
        ("ocr_svc", "ocr.decode"),
        ("ocr_svc", "ocr.detect"),
        ("ocr_svc", "ocr.recognize"),
        ("ocr_svc", "email publish"),
        ("notifier", "notifier deliver"),
        ("notifier", "mail send"),
    }
    spans = receiver.wait_for(trace_with(request_id, *wanted))
    trace_id = request_trace(spans, request_id, "/ocr/stream")
    in_trace = [s for s in spans if s.trace_id == trace_id]
    assert wanted <= {(s.service, s.name) for s in in_trace}
    server = next(s for s in in_trace if s.service == "ocr_svc" and s.name == recognize)
    phases = [s for s in in_trace if s.name.startswith("ocr.")]
    assert {s.parent_span_id for s in phases} == {server.span_id}
    user_id = server.attributes["enduser.id"]
    assert user_id
    gateway = next(s for s in in_trace if s.service == "gateway" and s.name == "POST /ocr/stream")
    assert gateway.attributes["enduser.id"] == user_id

    # Following it in the logs: each process it crossed wrote lines naming this trace (the
    # stream never calls auth_svc: the gateway and ocr_svc check tokens themselves).
    for service in ("gateway", "ocr", "notifier"):
        assert f'"trace_id":"{trace_id}"' in traced_mesh.log_of(service), service


def test_auth_svc_names_the_user_a_token_acts_for_on_its_span(
    traced_client: httpx.Client, traced_user: SignedUpUser, receiver: OtlpReceiver
) -> None:
    me = traced_client.get("/auth/me", headers=traced_user.auth)
    assert me.status_code == 200
    request_id = me.headers["x-request-id"]
    call = ("auth_svc", "/ocrmesh.auth.v1.AuthService/GetCurrentUser")
    spans = receiver.wait_for(trace_with(request_id, ("gateway", "GET /auth/me"), call))
    trace_id = request_trace(spans, request_id, "/auth/me")
    server = next(s for s in spans if s.trace_id == trace_id and (s.service, s.name) == call)
    assert server.attributes["enduser.id"] == me.json()["id"]


def test_the_registration_trace_is_in_auth_svcs_log(
    traced_mesh: Mesh, traced_client: httpx.Client, receiver: OtlpReceiver
) -> None:
    email = random_email()
    registered = traced_client.post(
        "/auth/register", json={"name": "Ada", "email": email, "password": "correct horse battery"}
    )
    request_id = registered.headers["x-request-id"]
    spans = receiver.wait_for(
        trace_with(
            request_id,
            ("gateway", "POST /auth/register"),
            ("auth_svc", "/ocrmesh.auth.v1.AuthService/Register"),
        )
    )
    trace_id = request_trace(spans, request_id, "/auth/register")
    assert f'"trace_id":"{trace_id}"' in traced_mesh.log_of("auth")


def test_no_span_attribute_holds_a_password_email_token_code_or_image(
    traced_mesh: Mesh, traced_client: httpx.Client, traced_user: SignedUpUser, receiver: OtlpReceiver
) -> None:
    me = traced_client.get("/auth/me", headers=traced_user.auth)
    assert me.status_code == 200
    code = wait_for_mail(traced_mesh.mail_dir, traced_user.email, kind=VERIFICATION_CODE).code
    assert code
    spans = receiver.wait_for(lambda spans: any(s.attributes.get("http.route") == "/auth/me" for s in spans))
    secrets = {
        "password": traced_user.password,
        "email": traced_user.email,
        "token": traced_user.token,
        "token part": traced_user.token.split(".")[-1],
        "code": code,
    }
    for span in spans:
        for key, value in span.attributes.items():
            assert not isinstance(value, bytes), (span.name, key)
            text = json.dumps(value)
            for what, secret in secrets.items():
                assert secret not in text, f"{what} in {span.service} {span.name} {key}"
