"""The faults, one function each: break something real under the running traffic, give it
back, and judge what the clients saw, what recovered and how fast, and the mail ledger.

Each returns a `FaultResult`: status counts during the fault and in the `after_s` seconds
after it, the recovery time against the issue's target, the slowest call (no call may hang
past the mesh's deadline), the ledger, and the checks with their verdicts."""

from __future__ import annotations

import errno
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.faults.dependencies import rabbitmq_stopped, restart_postgres, table_locked
from harness.faults.ledger import LedgerResult, settle, spool_mails
from harness.faults.mail_sink import MailSink, ReceivedMail
from harness.faults.traffic import (
    CLIENT_TIMEOUT_S,
    LOGIN,
    ME,
    OCR,
    REGISTER,
    Call,
    Traffic,
    register_burst,
    small_page,
    stream_ocr,
)
from harness.faults.workers import kill_one_worker, wait_worker_count, workers
from harness.images import render_text_image
from harness.mesh import Mesh

AUTH_KINDS = (REGISTER, LOGIN, ME)
#: The gateway's deadline on auth_svc calls (GRPC_TIMEOUT_SECONDS, its default) and how much
#: later than it an answer may come (the gateway's own work, a retry's backoff).
AUTH_DEADLINE_S = 5.0
DEADLINE_SLACK_S = 2.0
#: A small page's stream takes well under a second; one that takes this long hangs.
OCR_HANG_S = 30.0
#: The most mails a killed notifier can have sent without marking them sent (its senders,
#: NOTIFIER_SENDERS, each inside one SMTP transaction): what may go out twice.
NOTIFIER_IN_FLIGHT = 4


@dataclass(frozen=True)
class FaultPlan:
    """How long each fault lasts. `short`: the forms `make test` runs."""

    rabbitmq_down_s: float = 20.0
    smtp_down_s: float = 30.0
    spool_full_s: float = 15.0
    lock_held_s: float = AUTH_DEADLINE_S + 5.0
    after_s: float = 10.0
    settle_timeout_s: float = 180.0
    notifier_batch: int = 40

    @classmethod
    def short(cls) -> FaultPlan:
        return cls(
            rabbitmq_down_s=8.0, smtp_down_s=10.0, spool_full_s=8.0, settle_timeout_s=120.0, notifier_batch=20
        )


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class FaultResult:
    name: str
    fault: str
    during: str = ""
    after: str = ""
    recovery: str = ""
    slowest: str = ""
    ledger: LedgerResult | None = None
    checks: list[Check] = field(default_factory=list)
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "skipped"
        return "pass" if self.passed else "FAIL: " + "; ".join(c.name for c in self.checks if not c.passed)


@dataclass
class FaultContext:
    """What every fault works on: the running mesh, its mail server, the traffic."""

    mesh: Mesh
    sink: MailSink
    traffic: Traffic
    admin_url: str
    rabbitmq_url: str
    workdir: Path
    plan: FaultPlan
    spools: list[Path] = field(default_factory=list)
    duplicates_seen: int = 0

    def mails(self) -> list[ReceivedMail]:
        found = self.sink.mails()
        for spool in self.spools:
            found += spool_mails(spool)
        return found

    def settle(self, *, mailed_only: bool = False) -> tuple[LedgerResult, float]:
        return settle(
            lambda: self.traffic.accepted().keys(),
            self.mails,
            self.mesh.database_url,
            timeout=self.plan.settle_timeout_s,
            mailed_only=mailed_only,
        )


# -- judging ---------------------------------------------------------------------------------------
def status_counts(calls: list[Call]) -> str:
    """The calls given, per kind, as in "register 20/20, me 98/100 (503x2)"."""
    parts = []
    for kind in (REGISTER, LOGIN, ME, OCR):
        of_kind = [c for c in calls if c.kind == kind]
        if not of_kind:
            continue
        ok = sum(1 for c in of_kind if c.ok)
        failed = Counter(
            f"{c.status}{'/' + (c.final or 'no-final') if c.kind == OCR and c.status == 200 else ''}"
            for c in of_kind
            if not c.ok
        )
        extra = " (" + ", ".join(f"{s}x{n}" for s, n in sorted(failed.items())) + ")" if failed else ""
        parts.append(f"{kind} {ok}/{len(of_kind)}{extra}")
    return ", ".join(parts) or "no calls"


def success_rate(calls: list[Call]) -> float:
    return sum(1 for c in calls if c.ok) / len(calls) if calls else 1.0


def first_ok_after(traffic: Traffic, kind: str, moment: float, timeout: float = 60.0) -> float | None:
    """Seconds from `moment` until a call of `kind` ended well after it (waiting for one)."""
    deadline = time.monotonic() + timeout
    while True:
        done = [
            c.ended
            for c in traffic.calls(kind, since=moment - CLIENT_TIMEOUT_S)
            if c.ok and c.ended >= moment
        ]
        if done:
            return max(0.0, min(done) - moment)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def judge(
    ctx: FaultContext,
    result: FaultResult,
    began: float,
    ended: float,
    *,
    duplicates_allowed: int = 0,
) -> FaultResult:
    """Wait out the after window, then the common checks: no hang past the deadline, every
    OCR stream with a final event, the ledger settled, every service still the same process."""
    after_end = ended + ctx.plan.after_s
    time.sleep(max(0.0, after_end - time.monotonic()))
    # Calls still running at the end are waited for (each ends within the client's timeout).
    time.sleep(1.0)
    during = ctx.traffic.calls(since=began, until=ended)
    after = ctx.traffic.calls(since=ended, until=after_end)
    result.during = status_counts(during) if ended > began else "(instant)"
    result.after = status_counts(after)
    touched = ctx.traffic.calls(since=began - CLIENT_TIMEOUT_S, until=after_end)
    touched = [c for c in touched if c.ended >= began]
    auth = [c for c in touched if c.kind in AUTH_KINDS]
    slowest = max((c.elapsed for c in auth), default=0.0)
    streams = [c for c in touched if c.kind == OCR]
    slowest_stream = max((c.elapsed for c in streams), default=0.0)
    result.slowest = f"auth {slowest:.1f} s, ocr {slowest_stream:.1f} s"
    result.checks.append(
        Check(
            "no auth call past its deadline",
            slowest <= AUTH_DEADLINE_S + DEADLINE_SLACK_S,
            f"slowest {slowest:.2f} s (deadline {AUTH_DEADLINE_S:.0f} s + {DEADLINE_SLACK_S:.0f} s)",
        )
    )
    unfinished = [c for c in streams if c.status == 200 and not c.final]
    hung = [c for c in streams if c.elapsed > OCR_HANG_S]
    result.checks.append(
        Check(
            "every OCR stream has a final event",
            not unfinished and not hung,
            f"{len(streams)} streams, {len(unfinished)} without a final event, "
            f"{len(hung)} over {OCR_HANG_S:.0f} s",
        )
    )
    ledger, took = ctx.settle()
    result.ledger = ledger
    new_duplicates = ledger.duplicates - ctx.duplicates_seen
    ctx.duplicates_seen = ledger.duplicates
    result.checks.append(
        Check(
            "every accepted registration mailed",
            ledger.missing == 0,
            f"{ledger.summary()} (settled in {took:.1f} s)",
        )
    )
    result.checks.append(
        Check(
            "no outbox row lost", ledger.outbox_unsent == 0 and ledger.outbox_unmailed == 0, ledger.summary()
        )
    )
    result.checks.append(
        Check(
            "duplicates within the messages in flight",
            new_duplicates <= duplicates_allowed,
            f"{new_duplicates} new duplicate(s), at most {duplicates_allowed} allowed",
        )
    )
    gone = [name for name, proc in ctx.mesh.processes.items() if proc.poll() is not None]
    result.checks.append(Check("no service process exited", not gone, ", ".join(gone) or "all up"))
    return result


# -- the faults ----------------------------------------------------------------------------------
def auth_worker_killed(ctx: FaultContext) -> FaultResult:
    """SIGKILL one auth_svc worker: the others answer (>= 95% in the next 10 s), the
    supervisor restores the count within 5 s."""
    result = FaultResult("auth worker killed", "SIGKILL one of auth_svc's worker processes")
    parent = ctx.mesh.processes["auth"].pid
    count = len(workers(parent))
    began = time.monotonic()
    victim = kill_one_worker(parent)
    restored = wait_worker_count(parent, count, killed=victim, timeout=15)
    result.recovery = (
        f"workers {count}/{count} in {restored:.2f} s" if restored is not None else "not restored"
    )
    result.checks.append(
        Check("worker count restored within 5 s", restored is not None and restored <= 5, result.recovery)
    )
    judge(ctx, result, began, began)
    window = [c for c in ctx.traffic.calls(since=began, until=began + 10) if c.kind in AUTH_KINDS]
    rate = success_rate(window)
    result.checks.append(
        Check(">= 95% auth calls answered in the 10 s after", rate >= 0.95, f"{rate:.1%} of {len(window)}")
    )
    return result


def _many_lines_page() -> bytes:
    lines = [f"Line {n:02d} of the long page: harbour market accounts for the winter" for n in range(40)]
    return render_text_image(lines, size=24)


def ocr_worker_killed_mid_stream(ctx: FaultContext) -> FaultResult:
    """SIGKILL ocr_svc's (only) worker while it reads a long page: that stream ends with an
    error event within 5 s, a new worker takes its place, the next upload succeeds (within
    10 s), ocr_svc's own process stays."""
    result = FaultResult(
        "ocr worker killed mid-stream", "SIGKILL ocr_svc's worker after a stream's first event"
    )
    parent = ctx.mesh.processes["ocr"].pid
    count = len(workers(parent))
    user = ctx.traffic.users[0]
    first_event = threading.Event()
    outcome: list[Call] = []

    def read_long_page() -> None:
        with httpx.Client(base_url=ctx.mesh.gateway_url, timeout=CLIENT_TIMEOUT_S) as client:
            outcome.append(stream_ocr(client, user.token, _many_lines_page(), on_first_event=first_event.set))

    reader = threading.Thread(target=read_long_page, daemon=True)
    reader.start()
    if not first_event.wait(60):
        reader.join(CLIENT_TIMEOUT_S)
        result.checks.append(Check("the long stream started", False, repr(outcome)))
        return judge(ctx, result, time.monotonic(), time.monotonic())
    began = time.monotonic()
    victim = kill_one_worker(parent)
    reader.join(CLIENT_TIMEOUT_S)
    stream = outcome[0] if outcome else None
    ended_in = stream.ended - began if stream else float("inf")
    final = stream.final if stream else "none"
    result.checks.append(
        Check(
            "the killed stream ends with an error event within 5 s",
            stream is not None and final == "error" and ended_in <= 5,
            f"final {final!r} after {ended_in:.2f} s: {stream.detail if stream else ''}",
        )
    )
    restored = wait_worker_count(parent, count, killed=victim, timeout=15)
    answered: float | None = None
    with httpx.Client(base_url=ctx.mesh.gateway_url, timeout=CLIENT_TIMEOUT_S) as client:
        while time.monotonic() - began < 30:
            call = stream_ocr(client, user.token, small_page())
            if call.ok:
                answered = call.ended - began
                break
            time.sleep(0.2)
    result.recovery = (
        f"stream error after {ended_in:.2f} s; worker back in "
        f"{restored if restored is None else round(restored, 2)} s; next OCR ok after "
        f"{answered if answered is None else round(answered, 2)} s"
    )
    result.checks.append(
        Check("worker count restored within 5 s", restored is not None and restored <= 5, _s(restored))
    )
    result.checks.append(
        Check("ocr_svc answers again within 10 s", answered is not None and answered <= 10, _s(answered))
    )
    return judge(ctx, result, began, began)


def notifier_killed_mid_batch(ctx: FaultContext) -> FaultResult:
    """A batch of registrations; SIGKILL the notifier as its first mails go out, start a new
    one: every mail out within 30 s of the replacement starting, at most the mails in flight
    twice."""
    batch = ctx.plan.notifier_batch
    result = FaultResult(
        "notifier killed mid-batch", f"SIGKILL the notifier during a batch of {batch} registrations"
    )
    mailed_before = {m.to for m in ctx.mails()}
    calls: list[Call] = []
    burst = threading.Thread(target=lambda: calls.extend(register_burst(ctx.traffic, batch)), daemon=True)
    burst.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batch_mails = [m for m in ctx.mails() if m.to not in mailed_before and m.to.startswith("load-")]
        if batch_mails:
            break
        time.sleep(0.02)
    began = time.monotonic()
    ctx.mesh.stop("notifier", signal.SIGKILL)
    sent_at_kill = len([m for m in ctx.mails() if m.to not in mailed_before])
    time.sleep(1.0)
    health = ctx.mesh.env.get("NOTIFIER_HEALTH_FILE")
    if health:
        Path(health).unlink(missing_ok=True)
    ctx.mesh.start("notifier")
    replaced = time.monotonic()
    burst.join(CLIENT_TIMEOUT_S)
    accepted = [c for c in calls if c.status == 202]
    # Every mail of the run (not only the batch's) must be out within 30 s of the replacement.
    # (The judge then waits for the copies of the mails the killed notifier had sent but not
    # marked: they go out again once its claims' lease runs out, and count against this fault.)
    ledger, _ = ctx.settle(mailed_only=True)
    drained = time.monotonic() - replaced if ledger.missing == 0 else None
    result.recovery = (
        f"{sent_at_kill} mail(s) out before the kill; all out {drained:.1f} s after the replacement started"
        if drained is not None
        else "mail missing"
    )
    result.checks.append(
        Check(
            "every mail out within 30 s of the replacement",
            drained is not None and drained <= 30,
            result.recovery,
        )
    )
    result.checks.append(Check("the batch was accepted", len(accepted) == batch, f"{len(accepted)}/{batch}"))
    return judge(ctx, result, began, replaced, duplicates_allowed=NOTIFIER_IN_FLIGHT)


def smtp_down(ctx: FaultContext) -> FaultResult:
    """The SMTP server gone for `smtp_down_s`: registrations still accepted, every mail out
    once it is back. A mail whose DATA the server had taken when it went away, but whose
    "250" never reached the notifier, is sent again: SMTP cannot tell the sender otherwise
    (RFC 1047). Such duplicates are allowed, only for mails that arrived in the last second
    before the stop, and at most NOTIFIER_SENDERS of them."""
    seconds = ctx.plan.smtp_down_s
    result = FaultResult("SMTP down", f"the SMTP server stopped for {seconds:.0f} s")
    began = time.monotonic()
    ctx.sink.stop()
    stopped = time.monotonic()  # a session the stop cut may have had its DATA taken until now
    try:
        time.sleep(seconds)
    finally:
        ctx.sink.start()
    ended = time.monotonic()
    ctx.settle()
    result.recovery = f"mail backlog out {time.monotonic() - ended:.1f} s after SMTP is back"
    mails = ctx.sink.mails()
    in_flight = cut_at_stop(mails, began, stopped)
    result.recovery += f"; {in_flight} mail(s) taken as the server stopped, sent again"
    copies = repeated_copies(mails, began)
    if copies:
        result.recovery += f"; repeated: {copies}"
    during = [c for c in ctx.traffic.calls(REGISTER, since=began, until=ended)]
    rate = success_rate(during)
    result.checks.append(
        Check("registrations accepted while SMTP is down", rate >= 0.95, f"{rate:.1%} of {len(during)}")
    )
    return judge(ctx, result, began, ended, duplicates_allowed=min(in_flight, NOTIFIER_IN_FLIGHT))


def cut_at_stop(mails: list[ReceivedMail], stopping: float, stopped: float, window_s: float = 1.0) -> int:
    """Events mailed more than once whose first copy arrived from `window_s` before the
    server was told to stop (`stopping`) until it had stopped: the mails in flight when it
    went away. A session the stop cancels can have its DATA taken and lose its "250"."""
    first: dict[str, float] = {}
    copies: Counter[str] = Counter()
    for mail in mails:
        copies[mail.event_id] += 1
        first[mail.event_id] = min(first.get(mail.event_id, mail.at), mail.at)
    return sum(1 for event, n in copies.items() if n > 1 and stopping - window_s <= first[event] <= stopped)


def repeated_copies(mails: list[ReceivedMail], moment: float) -> str:
    """Each event mailed more than once, with when its copies came, in seconds from `moment`
    (what an operator needs to tell a copy cut by the stop from one sent twice later)."""
    times: dict[str, list[float]] = {}
    for mail in mails:
        times.setdefault(mail.event_id, []).append(mail.at - moment)
    return ", ".join(
        f"{event[:8]} at {' and '.join(f'{t:+.2f} s' for t in sorted(at))}"
        for event, at in times.items()
        if len(at) > 1
    )


def rabbitmq_down(ctx: FaultContext) -> FaultResult:
    seconds = ctx.plan.rabbitmq_down_s
    result = FaultResult("RabbitMQ stopped", f"rabbitmqctl stop_app for {seconds:.0f} s, then start_app")
    began = time.monotonic()
    with rabbitmq_stopped(ctx.rabbitmq_url):
        time.sleep(seconds)
    ended = time.monotonic()  # accepting AMQP connections again
    ctx.settle()
    result.recovery = (
        f"broker back after {ended - began:.1f} s; mail backlog out {time.monotonic() - ended:.1f} s later"
    )
    during = ctx.traffic.calls(REGISTER, since=began, until=ended)
    rate = success_rate(during)
    result.checks.append(
        Check("registrations accepted while the broker is down", rate >= 0.95, f"{rate:.1%} of {len(during)}")
    )
    return judge(ctx, result, began, ended)


def postgres_restarted(ctx: FaultContext) -> FaultResult:
    result = FaultResult("PostgreSQL restarted", "pg_ctlcluster restart of the real cluster under traffic")
    began = time.monotonic()
    ended = restart_postgres(ctx.admin_url)  # accepting connections again
    me = first_ok_after(ctx.traffic, ME, ended)
    register = first_ok_after(ctx.traffic, REGISTER, ended)
    result.recovery = (
        f"down {ended - began:.1f} s; /auth/me ok {_s(me)} and register {_s(register)} after PG accepts"
    )
    result.checks.append(
        Check("/auth/me answers within 10 s of PostgreSQL", me is not None and me <= 10, _s(me))
    )
    result.checks.append(
        Check("registrations accepted within 10 s", register is not None and register <= 10, _s(register))
    )
    return judge(ctx, result, began, ended)


def postgres_slow(ctx: FaultContext) -> FaultResult:
    seconds = ctx.plan.lock_held_s
    result = FaultResult(
        "PostgreSQL slow",
        f"an ACCESS EXCLUSIVE lock on users held {seconds:.0f} s (deadline {AUTH_DEADLINE_S:.0f} s)",
    )
    began = time.monotonic()
    with table_locked(ctx.mesh.database_url, "users"):
        time.sleep(seconds)
    ended = time.monotonic()
    me = first_ok_after(ctx.traffic, ME, ended)
    result.recovery = f"/auth/me ok {_s(me)} after the lock is released"
    result.checks.append(
        Check("/auth/me answers within 10 s of the lock's release", me is not None and me <= 10, _s(me))
    )
    return judge(ctx, result, began, ended)


def spool_full(ctx: FaultContext) -> FaultResult:
    """The notifier on the file transport (MAIL_DIR on a small tmpfs) while that disk is full:
    nothing lost, every mail written once when space returns."""
    seconds = ctx.plan.spool_full_s
    result = FaultResult(
        "mail spool full", f"MAIL_DIR on a 2 MiB tmpfs filled up for {seconds:.0f} s (file transport)"
    )
    spool = ctx.workdir / "spool"
    spool.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(spool)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        why = mounted.stderr.strip() or f"exit {mounted.returncode}"
        result.skipped = f"cannot mount a tmpfs here ({why}): needs root or CAP_SYS_ADMIN"
        return result
    name = "notifier-spool"
    began = ended = time.monotonic()
    try:
        filler = spool / "filler"
        _fill(filler)
        ctx.mesh.stop("notifier")
        ctx.spools.append(spool)
        ctx.mesh.start(
            name,
            service="notifier",
            env={
                "SMTP_HOST": "",
                "MAIL_DIR": str(spool),
                "NOTIFIER_HEALTH_FILE": str(ctx.workdir / "spool.alive"),
            },
        )
        began = time.monotonic()
        time.sleep(seconds)
        written_while_full = len(spool_mails(spool))
        filler.unlink()
        ended = time.monotonic()
        ctx.settle()
        result.recovery = (
            f"{written_while_full} mail(s) written while full; "
            f"backlog out {time.monotonic() - ended:.1f} s after space returned"
        )
        result.checks.append(
            Check("nothing written while the disk is full", written_while_full == 0, str(written_while_full))
        )
        judge(ctx, result, began, ended)
    finally:
        ctx.mesh.stop(name)
        if "notifier" not in ctx.mesh.processes:
            ctx.mesh.start("notifier")
        # The mails stay readable for the ledger: copy them out before the tmpfs goes.
        kept = ctx.workdir / "spool-mails"
        kept.mkdir(exist_ok=True)
        for path in spool.glob("*.eml"):
            (kept / path.name).write_bytes(path.read_bytes())
        subprocess.run(["umount", str(spool)], check=False)
        if spool in ctx.spools:
            ctx.spools[ctx.spools.index(spool)] = kept
    return result


def _fill(path: Path) -> None:
    """Write `path` until its file system has no space left (unbuffered: every byte lands)."""
    with path.open("wb", buffering=0) as handle:
        for size in (65536, 1):
            while True:
                try:
                    handle.write(b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"


Fault = Callable[[FaultContext], FaultResult]
#: Every fault, in the order a full run takes them.
FAULTS: dict[str, Fault] = {
    "auth-worker": auth_worker_killed,
    "ocr-worker": ocr_worker_killed_mid_stream,
    "notifier": notifier_killed_mid_batch,
    "smtp": smtp_down,
    "rabbitmq": rabbitmq_down,
    "postgres-restart": postgres_restarted,
    "postgres-slow": postgres_slow,
    "spool-full": spool_full,
}
