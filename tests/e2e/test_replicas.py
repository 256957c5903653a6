"""Replicas behind one gateway, as real processes: three ocr_svc on 127.0.0.2-4 and two
auth_svc on 127.0.0.2-3 (Linux loopback answers on all of 127/8), the gateway pointed at
each set with an `ipv4:` target, so its channels balance round robin (ocrmesh.platform.grpc_client).
Calls are counted from each replica's own access log."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest

from harness.images import sample_multiline_png
from harness.mesh import Mesh, running_mesh
from harness.ports import free_port
from notifier.mailbox import VERIFICATION_CODE, mails_to, wait_for_mail
from tests.e2e.conftest import SignedUpUser, random_email, sign_up

pytestmark = pytest.mark.e2e
T = TypeVar("T")

AUTH_HOSTS = ("127.0.0.2", "127.0.0.3")
OCR_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
RECOGNIZE = "/ocrmesh.ocr.v1.OcrService/Recognize"
REGISTER = "/ocrmesh.auth.v1.AuthService/Register"


@pytest.fixture(scope="module")
def replicated(
    tmp_path_factory: pytest.TempPathFactory, postgres_admin_url: str, rabbitmq_url: str
) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("replicas")
    with running_mesh(
        workdir, postgres_admin_url=postgres_admin_url, rabbitmq_url=rabbitmq_url, services=("notifier",)
    ) as mesh:
        auth_port, ocr_port = free_port(), free_port()  # the same port on each address
        mesh.env["AUTH_ADDR"] = "ipv4:" + ",".join(f"{host}:{auth_port}" for host in AUTH_HOSTS)
        mesh.env["OCR_ADDR"] = "ipv4:" + ",".join(f"{host}:{ocr_port}" for host in OCR_HOSTS)
        for i, host in enumerate(AUTH_HOSTS, 1):  # one after the other: the first makes the key
            own = {"AUTH_HOST": host, "AUTH_PORT": str(auth_port), "AUTH_METRICS_PORT": str(free_port())}
            mesh.start(f"auth-{i}", service="auth", env=own)
            mesh.wait_ready(f"auth-{i}")
        for i, host in enumerate(OCR_HOSTS, 1):
            own = {"OCR_HOST": host, "OCR_PORT": str(ocr_port), "OCR_METRICS_PORT": str(free_port())}
            mesh.start(f"ocr-{i}", service="ocr", env=own)
        for i in range(1, len(OCR_HOSTS) + 1):
            mesh.wait_ready(f"ocr-{i}")
        mesh.start("gateway")
        mesh.wait_ready("gateway")
        yield mesh


@pytest.fixture(scope="module")
def users(replicated: Mesh) -> list[SignedUpUser]:
    """Three users: each client below is one of them, calling one call at a time (a user may
    have only OCR_MAX_CALLS_PER_USER calls in one replica at once)."""
    with httpx.Client(base_url=replicated.gateway_url, timeout=60) as http:
        return [sign_up(http, replicated.mail_dir) for _ in range(3)]


def per_user(users: list[SignedUpUser], calls_each: int, call: Callable[[SignedUpUser], T]) -> list[T]:
    """`calls_each` calls by every user, the users at once, each one call after the other."""
    with ThreadPoolExecutor(len(users)) as pool:
        futures = [pool.submit(lambda u=u: [call(u) for _ in range(calls_each)]) for u in users]
        return [result for future in futures for result in future.result(timeout=300)]


def per_user_until(
    users: list[SignedUpUser], done: Callable[[], bool], call: Callable[[SignedUpUser], T]
) -> list[T]:
    """Calls by every user, the users at once, each one call after the other, until `done()`
    (at most 200 each): the calls span an event however fast each one is."""

    def calls(user: SignedUpUser) -> list[T]:
        made = []
        while not done() and len(made) < 200:
            made.append(call(user))
        return made

    with ThreadPoolExecutor(len(users)) as pool:
        futures = [pool.submit(calls, user) for user in users]
        return [result for future in futures for result in future.result(timeout=300)]


def calls_in_log(mesh: Mesh, name: str, method: str) -> int:
    count = 0
    for line in mesh.log_of(name).splitlines():
        if line.startswith("{") and method in line:
            try:
                count += json.loads(line).get("method") == method
            except ValueError:
                continue
    return count


def recognized_by(mesh: Mesh) -> dict[str, int]:
    return {f"ocr-{i}": calls_in_log(mesh, f"ocr-{i}", RECOGNIZE) for i in range(1, len(OCR_HOSTS) + 1)}


@dataclass
class StreamOutcome:
    started: float
    ended: float
    status: int
    events: list[str]
    error: str | None

    @property
    def completed(self) -> bool:
        return self.status == 200 and self.events[-1:] == ["completed"]


def ocr_stream(http: httpx.Client, user: SignedUpUser, image: bytes) -> StreamOutcome:
    """One /ocr/stream call, read to its end; how it ended."""
    started = time.monotonic()
    events: list[str] = []
    error = None
    files = {"file": ("page.png", image, "image/png")}
    with http.stream("POST", "/ocr/stream", headers=user.auth, files=files) as response:
        if response.status_code != 200:
            response.read()
            return StreamOutcome(started, time.monotonic(), response.status_code, [], response.text)
        for line in response.iter_lines():
            if line.strip():
                event = json.loads(line)
                events.append(event["type"])
                if event["type"] == "error":
                    error = event.get("detail")
    return StreamOutcome(started, time.monotonic(), 200, events, error)


def kill_after(mesh: Mesh, name: str, seconds: float) -> float:
    """SIGKILL `name` after `seconds`; returns when (monotonic) it was killed."""
    time.sleep(seconds)
    mesh.stop(name, sig=signal.SIGKILL)
    return time.monotonic()


def test_ocr_calls_are_spread_over_every_replica(replicated: Mesh, users: list[SignedUpUser]) -> None:
    before = recognized_by(replicated)
    files = {"file": ("page.png", sample_multiline_png(), "image/png")}
    with httpx.Client(base_url=replicated.gateway_url, timeout=60) as http:
        replies = per_user(users, 20, lambda user: http.post("/ocr", headers=user.auth, files=files))
    assert [r.status_code for r in replies] == [200] * 60, [r.text for r in replies if r.status_code != 200]
    served = {name: count - before[name] for name, count in recognized_by(replicated).items()}
    print(f"\n/ocr calls per replica: {served}")
    assert sum(served.values()) == 60
    assert min(served.values()) >= 10, served


def test_a_killed_replica_fails_no_new_call_and_takes_calls_again_once_restarted(
    replicated: Mesh, users: list[SignedUpUser]
) -> None:
    image = sample_multiline_png()
    victim = "ocr-2"
    with httpx.Client(base_url=replicated.gateway_url, timeout=60) as http, ThreadPoolExecutor(1) as killer:
        # streams in flight on every replica when it dies; each call bounded (never a hang)
        kill = killer.submit(kill_after, replicated, victim, 1.5)
        # Calls go on until 3 s after the kill, however fast each one is.
        outcomes = per_user_until(
            users,
            lambda: kill.done() and time.monotonic() > kill.result() + 3.0,
            lambda user: ocr_stream(http, user, image),
        )
        killed_at = kill.result()

    failed = [o for o in outcomes if not o.completed]
    print(f"\nstreams: {len(outcomes)}, not completed: {[(o.status, o.events, o.error) for o in failed]}")
    # A call started once the dead connection is gone goes to the live replicas: none fails.
    late = [o for o in outcomes if o.started > killed_at + 1.0]
    assert late, "no call started after the kill"
    assert all(o.completed for o in late), [(o.status, o.error) for o in late if not o.completed]
    # A stream that was on the killed replica ends with a clear error, as an event or a 503.
    for outcome in failed:
        assert outcome.status in (200, 503), outcome
        if outcome.status == 200:
            assert outcome.events[-1] == "error", outcome
            assert outcome.error, outcome

    before = calls_in_log(replicated, victim, RECOGNIZE)
    replicated.start(victim)
    replicated.wait_ready(victim)
    files = {"file": ("page.png", image, "image/png")}
    deadline = time.monotonic() + 15
    with httpx.Client(base_url=replicated.gateway_url, timeout=60) as http:
        while calls_in_log(replicated, victim, RECOGNIZE) == before:
            assert time.monotonic() < deadline, "the restarted replica took no call within 15 s"
            assert http.post("/ocr", headers=users[0].auth, files=files).status_code == 200


def test_two_auth_replicas_on_one_database_mail_each_code_once(replicated: Mesh) -> None:
    before = [calls_in_log(replicated, f"auth-{i}", REGISTER) for i in (1, 2)]
    emails = [random_email() for _ in range(12)]
    with httpx.Client(base_url=replicated.gateway_url, timeout=60) as http:
        for email in emails:
            body = {"name": "Replica Tester", "email": email, "password": "correct horse battery"}
            assert http.post("/auth/register", json=body).status_code == 202
    for email in emails:
        wait_for_mail(replicated.mail_dir, email, kind=VERIFICATION_CODE)
    time.sleep(2)  # both relays had time to send any row twice
    counts = {email: len(mails_to(replicated.mail_dir, email)) for email in emails}
    assert set(counts.values()) == {1}, counts
    registered = [calls_in_log(replicated, f"auth-{i}", REGISTER) - before[i - 1] for i in (1, 2)]
    assert sum(registered) == len(emails)
    assert min(registered) >= 1, registered
