"""Steady mixed traffic on a running mesh, as its users make it: registrations (their codes
come by mail to the suite's SMTP server), logins, `/auth/me`, and OCR streams of a small
page. Every call is recorded (when it started, how long it took, how it ended), every
accepted registration too, so a fault's effect can be read afterwards from the records.

Each kind of call runs in threads of its own at a steady pace, one `httpx.Client` per
thread. The client timeout is far above the mesh's call deadlines, so a call the mesh
leaves hanging shows as a long call rather than being cut by the client."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from harness.faults.mail_sink import MailSink
from harness.images import render_text_image
from harness.users import DEFAULT_PASSWORD, SignedUpUser, random_email

REGISTER, LOGIN, ME, OCR = "register", "login", "me", "ocr"
KINDS = (REGISTER, LOGIN, ME, OCR)
#: Answers that mean the call did what was asked.
OK_STATUSES = {REGISTER: 202, LOGIN: 200, ME: 200, OCR: 200}
#: How long the suite's clients wait (far past every deadline of the mesh: a hang shows).
CLIENT_TIMEOUT_S = 90.0
FINAL_EVENTS = ("completed", "error")

SMALL_PAGE_LINES = ("Invoice 2041 for the harbour market", "Total due: 120 EUR by 12 May")


def small_page() -> bytes:
    """Two short lines: what each OCR stream of the traffic reads."""
    return render_text_image(SMALL_PAGE_LINES, size=28)


@dataclass(frozen=True)
class Call:
    """One call as its client saw it. `status`: the HTTP status, or "timeout"/"error" when
    no answer came. `final`: an OCR stream's last event type ("" when it had none)."""

    kind: str
    started: float
    elapsed: float
    status: int | str
    final: str = ""
    detail: str = ""

    @property
    def ended(self) -> float:
        return self.started + self.elapsed

    @property
    def ok(self) -> bool:
        if self.status != OK_STATUSES[self.kind]:
            return False
        return self.kind != OCR or self.final == "completed"

    @property
    def server_error(self) -> bool:
        """A 5xx, or no answer at all."""
        return isinstance(self.status, str) or self.status >= 500


@dataclass(frozen=True)
class TrafficRates:
    """Calls per second of each kind."""

    register: float = 2.0
    login: float = 0.5
    me: float = 10.0
    ocr: float = 2.0


class _Addresses:
    """A distinct client address (`X-Forwarded-For`, believed from 127.0.0.1 by the mesh the
    suite starts) per registration: many people signing up, not one client auth_svc's
    per-address throttles would slow down."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def sign_up(
    client: httpx.Client, sink: MailSink, *, address: str, mail_timeout: float = 60.0
) -> SignedUpUser:
    """Register, read the code from `sink`, verify, log in (AssertionError when refused)."""
    email = random_email("fault")
    headers = {"X-Forwarded-For": address}
    body = {"name": "Fault Tester", "email": email, "password": DEFAULT_PASSWORD}
    _expect(client.post("/auth/register", json=body, headers=headers), 202)
    code = sink.code_for(email, mail_timeout)
    _expect(client.post("/auth/verify_otp", json={"email": email, "otp": code}, headers=headers), 200)
    login = client.post(
        "/auth/login", json={"username": email, "password": DEFAULT_PASSWORD}, headers=headers
    )
    _expect(login, 200)
    return SignedUpUser("Fault Tester", email, DEFAULT_PASSWORD, str(login.json()["access_token"]))


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise AssertionError(f"{response.request.url.path}: {response.status_code} {response.text[:300]}")


def stream_ocr(
    client: httpx.Client,
    token: str,
    page: bytes,
    *,
    on_first_event: Callable[[], None] | None = None,
) -> Call:
    """One `POST /ocr/stream` read to its end: its status and last event type."""
    started = time.monotonic()
    files = {"file": ("page.png", page, "image/png")}
    status: int | str = "error"
    final, detail = "", ""
    try:
        with client.stream(
            "POST", "/ocr/stream", files=files, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            status = response.status_code
            if status != 200:
                response.read()
                detail = response.text[:200]
            else:
                first = True
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    final = str(event.get("type", ""))
                    if final == "error":
                        detail = f"{event.get('status')} {event.get('detail', '')}"[:200]
                    if first and on_first_event is not None:
                        on_first_event()
                    first = False
                if final not in FINAL_EVENTS:
                    final = ""
    except httpx.TimeoutException as exc:
        status, detail = "timeout", repr(exc)[:200]
    except httpx.HTTPError as exc:
        detail = repr(exc)[:200]
        final = final if final in FINAL_EVENTS else ""
    return Call(OCR, started, time.monotonic() - started, status, final, detail)


@dataclass
class Traffic:
    """`start()` the threads, read `calls()` and `accepted()` at any time, `stop()`."""

    gateway_url: str
    users: list[SignedUpUser]
    rates: TrafficRates = field(default_factory=TrafficRates)
    page: bytes = field(default_factory=small_page)
    _calls: list[Call] = field(default_factory=list)
    _accepted: dict[str, float] = field(default_factory=dict)
    _attempted: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _addresses: _Addresses = field(default_factory=_Addresses)
    _paused: threading.Event = field(default_factory=threading.Event)

    # -- what happened -----------------------------------------------------------------------
    def calls(self, kind: str | None = None, since: float = 0.0, until: float = float("inf")) -> list[Call]:
        """Calls of `kind` (every kind: None) that started in [since, until)."""
        with self._lock:
            calls = list(self._calls)
        return [c for c in calls if (kind is None or c.kind == kind) and since <= c.started < until]

    def accepted(self) -> dict[str, float]:
        """Every registration answered 202: address (lower case) -> when it was accepted."""
        with self._lock:
            return dict(self._accepted)

    def attempted(self) -> set[str]:
        """Every address a registration was tried for, accepted or not."""
        with self._lock:
            return set(self._attempted)

    def record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    # -- running -------------------------------------------------------------------------------
    def start(self) -> Traffic:
        plan: list[tuple[str, float, Callable[[httpx.Client, int], Call]]] = [
            (REGISTER, self.rates.register, self.register_once),
            (LOGIN, self.rates.login, self._login),
            (ME, self.rates.me / 2, self._me),
            (ME, self.rates.me / 2, self._me),
            (OCR, self.rates.ocr, self._ocr),
        ]
        for index, (kind, rate, action) in enumerate(plan):
            if rate <= 0.0:
                continue
            thread = threading.Thread(
                target=self._run, args=(action, rate, index), name=f"traffic-{kind}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S + 5)
        self._threads.clear()

    def pause(self, paused: bool) -> None:
        """Stop (or resume) starting new calls; a call in progress ends normally."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def _run(self, action: Callable[[httpx.Client, int], Call], rate: float, index: int) -> None:
        period = 1.0 / rate
        with httpx.Client(base_url=self.gateway_url, timeout=CLIENT_TIMEOUT_S) as client:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                if self._paused.is_set():
                    time.sleep(0.1)
                    continue
                began = time.monotonic()
                self.record(action(client, index + n))
                self._stop.wait(max(0.0, period - (time.monotonic() - began)))

    def _timed(self, kind: str, send: Callable[[], httpx.Response]) -> tuple[Call, httpx.Response | None]:
        started = time.monotonic()
        try:
            response = send()
        except httpx.TimeoutException as exc:
            return Call(kind, started, time.monotonic() - started, "timeout", detail=repr(exc)[:200]), None
        except httpx.HTTPError as exc:
            return Call(kind, started, time.monotonic() - started, "error", detail=repr(exc)[:200]), None
        detail = "" if response.status_code < 400 else response.text[:200]
        return Call(kind, started, time.monotonic() - started, response.status_code, detail=detail), response

    def register_once(self, client: httpx.Client, n: int = 0) -> Call:
        """One registration of a new address; accepted ones are remembered for the ledger."""
        email = f"load-{uuid.uuid4().hex[:12]}@example.com"
        with self._lock:
            self._attempted.add(email)
        body = {"name": "Load Tester", "email": email, "password": DEFAULT_PASSWORD}
        headers = {"X-Forwarded-For": self._addresses.next()}
        call, _ = self._timed(REGISTER, lambda: client.post("/auth/register", json=body, headers=headers))
        if call.status == 202:
            with self._lock:
                self._accepted[email] = call.ended
        return call

    def _login(self, client: httpx.Client, n: int) -> Call:
        user = self.users[n % len(self.users)]
        body = {"username": user.email, "password": user.password}
        call, _ = self._timed(LOGIN, lambda: client.post("/auth/login", json=body))
        return call

    def _me(self, client: httpx.Client, n: int) -> Call:
        user = self.users[n % len(self.users)]
        call, _ = self._timed(ME, lambda: client.get("/auth/me", headers=user.auth))
        return call

    def _ocr(self, client: httpx.Client, n: int) -> Call:
        user = self.users[n % len(self.users)]
        return stream_ocr(client, user.token, self.page)


def register_burst(traffic: Traffic, count: int, *, parallel: int = 8) -> list[Call]:
    """`count` registrations at once (recorded with the traffic's): a batch for the notifier."""

    def one(n: int) -> Call:
        with httpx.Client(base_url=traffic.gateway_url, timeout=CLIENT_TIMEOUT_S) as client:
            call = traffic.register_once(client, n)
        traffic.record(call)
        return call

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, range(count)))
