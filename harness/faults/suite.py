"""A mesh for the fault suite and the soak run: the four services as processes (as `make up`
runs them, `harness.mesh`), with their own database and queue on the real PostgreSQL and
RabbitMQ, the notifier on the suite's SMTP server, two auth_svc workers, one supervised
ocr_svc worker, and steady traffic on it; then the faults one after another and a report."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.faults.mail_sink import MailSink
from harness.faults.scenarios import FAULTS, FaultContext, FaultPlan, FaultResult
from harness.faults.traffic import Traffic, TrafficRates, sign_up
from harness.mesh import Mesh, running_mesh

log = logging.getLogger(__name__)

#: What the suite's mesh runs with beyond `harness.mesh`'s defaults, and why.
MESH_ENV = {
    # Two auth_svc workers: one can be killed while the other answers. One supervised
    # ocr_svc worker: killing it is "the only worker" case of the issue.
    "AUTH_PROCESSES": "2",
    "OCR_PROCESSES": "1",
    "GATEWAY_WORKERS": "1",
    # The traffic's registrations carry X-Forwarded-For (many people, not one client).
    "GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
    # Shorter retry steps than the default 5, 30, 120, 600 s so an outage's backlog comes out
    # within a fault's budget, and enough attempts that a 30 s outage never parks a mail.
    "EMAIL_RETRY_DELAYS": "2,5,10,20",
    "NOTIFIER_MAX_ATTEMPTS": "12",
}
SIGN_UP_USERS = 3


@dataclass
class FaultRig:
    """A running mesh with its mail server and traffic."""

    mesh: Mesh
    sink: MailSink
    traffic: Traffic
    workdir: Path
    postgres_admin_url: str
    rabbitmq_url: str

    def context(self, plan: FaultPlan) -> FaultContext:
        return FaultContext(
            mesh=self.mesh,
            sink=self.sink,
            traffic=self.traffic,
            admin_url=self.postgres_admin_url,
            rabbitmq_url=self.rabbitmq_url,
            workdir=self.workdir,
            plan=plan,
        )


@contextlib.contextmanager
def fault_rig(
    workdir: Path,
    *,
    postgres_admin_url: str,
    rabbitmq_url: str,
    rates: TrafficRates | None = None,
) -> Iterator[FaultRig]:
    """The mesh, its SMTP server, a few signed-up users and the traffic (running)."""
    workdir.mkdir(parents=True, exist_ok=True)
    sink = MailSink().start()
    try:
        env = {**MESH_ENV, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port)}
        with running_mesh(
            workdir, postgres_admin_url=postgres_admin_url, rabbitmq_url=rabbitmq_url, extra_env=env
        ) as mesh:
            with httpx.Client(base_url=mesh.gateway_url, timeout=60) as client:
                users = [sign_up(client, sink, address=f"10.255.0.{n + 1}") for n in range(SIGN_UP_USERS)]
            traffic = Traffic(mesh.gateway_url, users, rates or TrafficRates()).start()
            try:
                yield FaultRig(mesh, sink, traffic, workdir, postgres_admin_url, rabbitmq_url)
            finally:
                traffic.stop()
    finally:
        sink.stop()


def run_faults(rig: FaultRig, names: Sequence[str], plan: FaultPlan) -> list[FaultResult]:
    """Each fault named, in order, on the running rig."""
    context = rig.context(plan)
    results = []
    for name in names:
        log.info("fault %s", name)
        results.append(FAULTS[name](context))
    return results


def report(results: Sequence[FaultResult], *, title: str, notes: Sequence[str] = ()) -> str:
    """The run as markdown: one row per fault, then each fault's checks."""
    lines = [
        f"## {title}",
        "",
        "| fault | during (ok/total) | after, 10 s (ok/total) | recovery | slowest call "
        "| mail ledger | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.name} | | | | | | skipped: {r.skipped} |")
            continue
        ledger = r.ledger.summary() if r.ledger else ""
        lines.append(
            f"| {r.name} | {r.during} | {r.after} | {r.recovery} | {r.slowest} | {ledger} | {r.verdict} |"
        )
    lines.append("")
    for r in results:
        lines.append(
            f"- **{r.name}** ({r.fault}): "
            + "; ".join(f"{'ok' if c.passed else 'FAILED'} {c.name} [{c.detail}]" for c in r.checks)
        )
    lines += ["", *notes]
    return "\n".join(lines) + "\n"


def timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def quiet_logs() -> None:
    """The suite's own progress at INFO; the clients' and servers' chatter only when it warns."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore", "mail.log", "pika", "aiosmtpd"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM (a `timeout`, a CI runner giving up) ends the run through its `finally` blocks,
    as Ctrl-C does: PostgreSQL and RabbitMQ are given back, the mesh stopped, the tmpfs
    unmounted. Without this the default action would end the process where it stands."""

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)
