"""The gateway's OpenAPI document tells the truth: schemathesis generates requests from
`/openapi.json` (valid ones and deliberately invalid ones) and sends them to the live
mesh, and every answer must be what the document says it is.

Checks: every built-in response check (no 5xx, documented status, content type, headers
and body schema; schema-valid data accepted, schema-invalid data refused; a missing
required header refused), plus `refused_only_for_a_rule_no_schema_states`: a schema-valid
request may be refused (400) only for a rule no JSON schema can state (a common password,
a wrong code), with that rule's message.

Limits: auth_svc throttles per client address, so each request comes from its own
loopback address (127.0.0.2 and up), as if from many clients; the per-account throttles
stay as they are (each generated address is new). Positive `/ocr` cases carry real
images (schemathesis' media-type strategies), negative ones random bytes.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from schemathesis import Case, GenerationMode
from schemathesis.config import SchemathesisConfig

# The rule of its positive-data check for operations that grant credentials (a wrong
# password is not a schema matter), applied to the 422s this module judges itself.
from schemathesis.specs.openapi.checks import CREDENTIAL_REJECTION_STATUSES, _grants_credentials

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.uploads import DOCUMENT_MEDIA_TYPES, IMAGE_MEDIA_TYPES
from harness.documents import text_layer_pdf
from harness.images import render_text_image
from harness.mesh import Mesh
from notifier.mailbox import VERIFICATION_CODE, wait_for_mail
from ocrmesh.rules.account_rules import EMAIL_MAX_LENGTH
from tests.e2e.conftest import SignedUpUser, sign_up

# Per operation; the whole module runs in about a minute and a half on two cores.
MAX_EXAMPLES = 25
# Stateful scenarios, of up to 12 linked calls each (enough that most reach `me`).
JOURNEYS = 60

CONFIG = SchemathesisConfig.from_str(
    """
[checks.positive_data_acceptance]
# 400 and 422 are allowed here only as refused_only_for_a_rule_no_schema_states says.
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429"]
"""
)

# The messages of the rules auth_svc enforces that a schema cannot state.
SEMANTIC_REFUSALS = re.compile(
    r"too common|must not be your name or email|invalid or expired code|special-use or reserved name"
)
# What the OCR routes refuse in a schema-valid `languages` field: a code this deployment does
# not read (which codes is ocr_svc's answer, GET /ocr/languages), or more distinct codes than
# allowed (a schema cannot count distinct items of a comma-separated string).
LANGUAGE_REFUSALS = re.compile(r"is not read here|at most \d+ languages")
TOKEN_PATHS = frozenset({"/auth/logout", "/auth/logout_all"})
# Operations whose success needs no secret the generator cannot know (a code, a password).
# (The code-mailing ones answer a repeated address 202 too, within its cooldown: issue 28.)
SUCCEEDS_WITHOUT_SECRETS = frozenset(
    {
        "/auth/register",
        "/auth/generate_otp",
        "/auth/password/forgot",
        "/auth/me",
        "/auth/logout",
        "/auth/logout_all",
        "/ocr",
        "/ocr/stream",
        "/healthz",
        "/readyz",
    }
)


def _images() -> dict[str, bytes]:
    formats = {"image/png": "PNG", "image/jpeg": "JPEG", "image/tiff": "TIFF", "image/bmp": "BMP"}
    formats["image/webp"] = "WEBP"
    assert set(formats) == set(IMAGE_MEDIA_TYPES), "a format the gateway reads has no sample here"
    return {
        media_type: render_text_image(["Contract 42"], image_format=name)
        for media_type, name in formats.items()
    }


for _media_type, _image in _images().items():
    schemathesis.openapi.media_type(_media_type, st.just(_image))
# A document too: a one-page born-digital PDF (its text layer is read in milliseconds).
assert DOCUMENT_MEDIA_TYPES == ("application/pdf",), "a document format the gateway reads has no sample here"
schemathesis.openapi.media_type("application/pdf", st.just(text_layer_pdf(pages=1, vietnamese=False).data))


@schemathesis.check
def refused_only_for_a_rule_no_schema_states(ctx: Any, response: Any, case: Case) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 422):
        return None
    detail = response.json().get("detail", "")
    if response.status_code == 422:
        refusals = detail if isinstance(detail, list) else []
        if refusals and all(
            "languages" in item.get("loc", ()) and LANGUAGE_REFUSALS.search(str(item.get("msg", "")))
            for item in refusals
        ):
            return None
        # Any other 422 of schema-valid data is what schemathesis's own check refuses, but for
        # an operation that grants credentials (its rule, kept as it was).
        if response.status_code in CREDENTIAL_REJECTION_STATUSES and _grants_credentials(case.operation):
            return None
        raise AssertionError(f"schema-valid request refused: {detail!r}")
    if not isinstance(detail, str) or not SEMANTIC_REFUSALS.search(detail):
        raise AssertionError(f"schema-valid request refused: {detail!r}")
    return None


class _FromAddress(HTTPAdapter):
    """Connections from one loopback address: auth_svc sees one client per address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Clients:
    """A requests session per loopback address, handed out in turn."""

    def __init__(self) -> None:
        self.sessions: list[requests.Session] = []
        for last in range(2, 255):
            session = requests.Session()
            session.mount("http://", _FromAddress(f"127.0.0.{last}"))
            self.sessions.append(session)
        self._turn = itertools.cycle(self.sessions)

    def next(self) -> requests.Session:
        return next(self._turn)

    def close(self) -> None:
        for session in self.sessions:
            session.close()


@pytest.fixture(scope="module")
def clients() -> Iterator[Clients]:
    pool = Clients()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def contract_users(mesh: Mesh) -> tuple[SignedUpUser, SignedUpUser]:
    """Two users of this module's own: one whose token every case uses, one whose sessions
    the logout cases end (a fresh token each)."""
    with httpx.Client(base_url=mesh.gateway_url, timeout=60) as http:
        return sign_up(http, mesh.mail_dir, name="Contract"), sign_up(http, mesh.mail_dir, name="Leaver")


@pytest.fixture(scope="module")
def api_schema(mesh: Mesh) -> Any:
    return schemathesis.openapi.from_url(f"{mesh.gateway_url}/openapi.json", config=CONFIG)


def _operations() -> list[Any]:
    """(path, method, mode) of every documented operation: schema-valid requests for each,
    schema-invalid ones for those that take input."""
    document = create_app(GatewaySettings()).openapi()
    cases = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            modes = [GenerationMode.POSITIVE]
            if "requestBody" in operation or operation.get("parameters"):
                modes.append(GenerationMode.NEGATIVE)
            cases += [
                pytest.param(path, method.upper(), mode, id=f"{method.upper()} {path} {mode.value}")
                for mode in modes
            ]
    return cases


def _token_for(
    path: str, users: tuple[SignedUpUser, SignedUpUser], session: requests.Session, base_url: str
) -> str:
    user, leaver = users
    if path not in TOKEN_PATHS:
        return user.token
    login = session.post(
        f"{base_url}/auth/login",
        json={"username": leaver.email, "password": leaver.password},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    return str(login.json()["access_token"])


@pytest.mark.parametrize(("path", "method", "mode"), _operations())
def test_every_operation_answers_as_its_schema_says(
    path: str,
    method: str,
    mode: GenerationMode,
    api_schema: Any,
    mesh: Mesh,
    clients: Clients,
    contract_users: tuple[SignedUpUser, SignedUpUser],
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def answers_as_documented(case: Case) -> None:
        session = clients.next()
        headers: dict[str, str] = {}
        if not any(name.lower() == "authorization" for name in case.headers or {}):
            headers["Authorization"] = f"Bearer {_token_for(path, contract_users, session, mesh.gateway_url)}"
        response = case.call(session=session, headers=headers, timeout=120)
        case.validate_response(
            response, headers=headers, additional_checks=[refused_only_for_a_rule_no_schema_states]
        )
        statuses[response.status_code] += 1

    statuses: Counter[int] = Counter()
    answers_as_documented()
    if mode == GenerationMode.POSITIVE and path in SUCCEEDS_WITHOUT_SECRETS:
        # The success answer was seen, and checked, too: not only refusals.
        assert any(200 <= code < 300 for code in statuses), dict(statuses)


@given(
    data=st.binary(min_size=1, max_size=4096),
    declared=st.sampled_from([*IMAGE_MEDIA_TYPES, "application/octet-stream"]),
)
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_random_bytes_sent_as_an_image_are_a_documented_4xx(
    data: bytes,
    declared: str,
    mesh: Mesh,
    clients: Clients,
    contract_users: tuple[SignedUpUser, SignedUpUser],
) -> None:
    response = clients.next().post(
        f"{mesh.gateway_url}/ocr",
        files={"file": ("page.png", data, declared)},
        headers={"Authorization": f"Bearer {contract_users[0].token}"},
        timeout=60,
    )
    # 415 (not an image by its bytes) or, for bytes that begin like one, ocr_svc's refusal:
    # 422 unreadable, 413 too many pixels, 400 without a reason.
    assert response.status_code in (400, 413, 415, 422), response.text
    assert set(response.json()) == {"detail"}


JOURNEY = ("register", "verify_otp", "login", "me")


def fresh_address(email: str) -> str:
    """`email` with a new local part, exactly as valid for the schema as it was: a negative
    case (no @, too long) is left as generated, never turned into a valid address."""
    local, at, domain = email.rpartition("@")
    if not at or not 3 <= len(email) <= EMAIL_MAX_LENGTH:
        return email
    size = max(len(local), 12) if len(email) - len(local) + 12 <= EMAIL_MAX_LENGTH else len(local)
    return f"{(uuid.uuid4().hex * 8)[: max(size, 1)]}@{domain}"


def _key(email: object) -> str:
    # As auth_svc compares addresses (the answers carry the normalised form).
    return email.strip().lower() if isinstance(email, str) else ""


def test_the_sign_up_journey_follows_the_documented_links(
    api_schema: Any, mesh: Mesh, clients: Clients, contract_users: tuple[SignedUpUser, SignedUpUser]
) -> None:
    """Stateful: schemathesis chains register -> verify_otp / login, verify_otp -> login and
    login -> me along the document's OpenAPI links (generate_otp's link is left out: within
    the resend cooldown it mails no new code, so it adds no step; it is covered above). The machine plays
    the user's mailbox and memory: a code it verifies is the one mailed to an address it
    registered, a password it logs in with is the one it registered."""
    accounts: dict[str, str] = {}
    used: set[str] = set()
    reached: Counter[tuple[str, int]] = Counter()
    user = contract_users[0]

    class Journey(api_schema.include(operation_id=list(JOURNEY)).as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario knows only the accounts it registered itself: a replayed scenario
            # then meets the server as its first run did.
            accounts.clear()

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            headers = {}
            if not any(name.lower() == "authorization" for name in case.headers or {}):
                headers["Authorization"] = f"Bearer {user.token}"
            return {"session": clients.next(), "headers": headers, "timeout": 60}

        def before_call(self, case: Case) -> None:
            body = case.body if isinstance(case.body, dict) else {}
            if case.path == "/auth/register" and isinstance(body.get("email"), str):
                # Hypothesis replays scenarios; a replayed one must find the server as the
                # first run did, so an address is registered once and then replaced by a new one.
                if body["email"].lower() in used:
                    body["email"] = fresh_address(body["email"])
                used.add(body["email"].lower())
            if case.path == "/auth/verify_otp" and _key(body.get("email")) in accounts:
                with contextlib.suppress(TimeoutError):  # throttled sends mail nothing
                    body["otp"] = wait_for_mail(
                        mesh.mail_dir, body["email"], kind=VERIFICATION_CODE, timeout=30
                    ).code
            if case.path == "/auth/login" and _key(body.get("username")) in accounts:
                body["password"] = accounts[_key(body["username"])]

        def after_call(self, response: Any, case: Case) -> None:
            reached[(case.path, response.status_code)] += 1
            body = case.body if isinstance(case.body, dict) else {}
            if case.path == "/auth/register" and response.status_code == 202:
                accounts[_key(body["email"])] = body["password"]

        def validate_response(
            self, response: Any, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            super().validate_response(
                response, case, additional_checks=[refused_only_for_a_rule_no_schema_states], **kwargs
            )

    Journey.run(
        settings=settings(
            max_examples=JOURNEYS,
            stateful_step_count=12,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    # The links were walked to the end at least once: a new account verified, then used.
    walked = ", ".join(f"{path} {code}: {count}" for (path, code), count in sorted(reached.items()))
    assert reached[("/auth/verify_otp", 200)], walked
    assert reached[("/auth/me", 200)], walked
    print(f"\nstateful journey: {walked}")
