"""The soak run (`make soak`): the fault suite's traffic for a long time, no faults, and every
`interval` seconds a sample of each service's resources: RSS, open file descriptors and
threads (summed over the service's process tree: a supervisor and its workers), PostgreSQL
connections to the mesh's database, RabbitMQ channels of the mesh's connections, and the
latency of the calls since the previous sample. It fails on an RSS slope after warm-up
above the bound (MiB per minute, per service, a Theil-Sen line), on any 5xx (or call
with no answer), or on a mail not delivered exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.engine import make_url

from harness.faults.dependencies import database_connections, rabbitmq_channels
from harness.faults.ledger import LedgerResult
from harness.faults.scenarios import Check, FaultPlan
from harness.faults.suite import FaultRig
from harness.faults.traffic import KINDS, ME, OCR, Call
from harness.faults.workers import tree

log = logging.getLogger(__name__)

AMQP_PORT = 5672
MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    minute: float
    rss_mib: dict[str, float]
    fds: dict[str, int]
    threads: dict[str, int]
    pg_connections: int
    rabbit_channels: int | None
    # kind -> (p50, p95) milliseconds of the calls since the previous sample.
    latency_ms: dict[str, tuple[float, float]]
    calls: int
    server_errors: int


@dataclass
class SoakResult:
    duration_s: float
    interval_s: float
    warmup_s: float
    max_slope: float
    samples: list[Sample] = field(default_factory=list)
    slopes: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    server_errors: list[Call] = field(default_factory=list)
    ledger: LedgerResult | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _service_pids(rig: FaultRig) -> dict[str, int]:
    return {name: proc.pid for name, proc in rig.mesh.processes.items() if proc.poll() is None}


def sample(rig: FaultRig, began: float, calls: Sequence[Call]) -> Sample:
    rss: dict[str, float] = {}
    fds: dict[str, int] = {}
    threads: dict[str, int] = {}
    amqp_ports: set[int] = set()
    for name, pid in _service_pids(rig).items():
        rss[name], fds[name], threads[name] = 0.0, 0, 0
        for process in tree(pid):
            try:
                with process.oneshot():
                    rss[name] += process.memory_info().rss / MIB
                    fds[name] += process.num_fds()
                    threads[name] += process.num_threads()
                    for conn in process.net_connections(kind="tcp"):
                        if conn.raddr and conn.raddr.port == AMQP_PORT:
                            amqp_ports.add(int(conn.laddr.port))
            except Exception:  # a process that ended between the listing and the reading
                continue
    database = make_url(rig.mesh.database_url).database or ""
    latency: dict[str, tuple[float, float]] = {}
    for kind in KINDS:
        times = [c.elapsed * 1000 for c in calls if c.kind == kind and c.ok]
        if times:
            latency[kind] = (float(np.percentile(times, 50)), float(np.percentile(times, 95)))
    return Sample(
        minute=(time.monotonic() - began) / 60,
        rss_mib=rss,
        fds=fds,
        threads=threads,
        pg_connections=database_connections(rig.postgres_admin_url, database),
        rabbit_channels=rabbitmq_channels(amqp_ports),
        latency_ms=latency,
        calls=len(calls),
        server_errors=sum(1 for c in calls if c.server_error),
    )


def slope_per_minute(samples: Sequence[Sample], service: str, warmup_minutes: float) -> float:
    """Theil-Sen RSS slope (MiB/min) of `service` over the samples after the warm-up: the
    median of the slopes between every two samples. A sample taken while a request held a
    large buffer (an Argon2 hash holds 19 MiB until it returns) is an outlier a least-squares
    line follows: one such sample near the end of a two-minute soak read as +6 MiB/min on a
    flat service. The median does not move for a minority of outliers, and a steady leak
    still moves every pairwise slope."""
    points = [
        (s.minute, s.rss_mib[service]) for s in samples if s.minute >= warmup_minutes and service in s.rss_mib
    ]
    if len(points) < 3:
        return 0.0
    minutes, rss = (np.array(values) for values in zip(*points, strict=True))
    first, second = np.triu_indices(len(points), k=1)
    apart = minutes[second] - minutes[first]
    distinct = apart > 0
    if not distinct.any():
        return 0.0
    return float(np.median((rss[second] - rss[first])[distinct] / apart[distinct]))


def run_soak(
    rig: FaultRig,
    *,
    duration_s: float,
    interval_s: float,
    warmup_s: float,
    max_slope: float,
    settle_s: float = 120,
) -> SoakResult:
    result = SoakResult(duration_s, interval_s, warmup_s, max_slope)
    began = time.monotonic()
    previous = began
    result.samples.append(sample(rig, began, []))
    while (now := time.monotonic()) - began < duration_s:
        time.sleep(min(interval_s, max(0.0, began + duration_s - now)))
        since, previous = previous, time.monotonic()
        taken = sample(rig, began, rig.traffic.calls(since=since, until=previous))
        result.samples.append(taken)
        log.info(
            "soak %.1f min: RSS %s MiB, %d calls, %d 5xx",
            taken.minute,
            {name: round(rss) for name, rss in taken.rss_mib.items()},
            taken.calls,
            taken.server_errors,
        )
    calls = rig.traffic.calls(since=began)
    result.calls = {kind: sum(1 for c in calls if c.kind == kind) for kind in KINDS}
    result.server_errors = [c for c in calls if c.server_error]
    context = rig.context(FaultPlan(settle_timeout_s=settle_s))
    result.ledger, _ = context.settle()
    for service in result.samples[-1].rss_mib:
        result.slopes[service] = slope_per_minute(result.samples, service, warmup_s / 60)
    worst = max(result.slopes.items(), key=lambda item: item[1], default=("-", 0.0))
    result.checks = [
        Check(
            f"RSS slope after warm-up <= {max_slope:g} MiB/min per service",
            all(slope <= max_slope for slope in result.slopes.values()),
            f"steepest {worst[0]} {worst[1]:+.2f} MiB/min",
        ),
        Check(
            "no 5xx and no call without an answer",
            not result.server_errors,
            f"{len(result.server_errors)} of {len(calls)}"
            + (f", first: {result.server_errors[0]}" if result.server_errors else ""),
        ),
        Check(
            "no mail lost",
            result.ledger.complete,
            result.ledger.summary(),
        ),
        Check(
            "no mail twice",
            result.ledger.duplicates == 0,
            f"{result.ledger.duplicates} duplicate(s)",
        ),
    ]
    return result


def soak_report(result: SoakResult, *, title: str, plot_name: str = "") -> str:
    first, last = result.samples[0], result.samples[-1]
    lines = [
        f"## {title}",
        "",
        f"Duration {result.duration_s / 60:.1f} min, a sample every {result.interval_s:.0f} s, "
        f"warm-up {result.warmup_s / 60:.1f} min; calls: "
        + ", ".join(f"{kind} {n}" for kind, n in result.calls.items())
        + ".",
        "",
        "| service | RSS first -> last (MiB) | slope after warm-up (MiB/min) "
        "| fds first -> last | threads first -> last |",
        "|---|---|---|---|---|",
    ]
    for service, slope in result.slopes.items():
        lines.append(
            f"| {service} | {first.rss_mib.get(service, 0):.0f} -> {last.rss_mib.get(service, 0):.0f} "
            f"| {slope:+.2f} | {first.fds.get(service, 0)} -> {last.fds.get(service, 0)} "
            f"| {first.threads.get(service, 0)} -> {last.threads.get(service, 0)} |"
        )
    pg = [s.pg_connections for s in result.samples]
    channels = [s.rabbit_channels for s in result.samples if s.rabbit_channels is not None]
    lines += [
        "",
        f"PostgreSQL connections to the mesh's database: {min(pg)}-{max(pg)} (last {pg[-1]}); "
        + (
            f"RabbitMQ channels of the mesh: {min(channels)}-{max(channels)} (last {channels[-1]})."
            if channels
            else "RabbitMQ channels: rabbitmqctl did not answer."
        ),
    ]
    me = [s.latency_ms[ME] for s in result.samples if ME in s.latency_ms]
    ocr = [s.latency_ms[OCR] for s in result.samples if OCR in s.latency_ms]
    if me and ocr:
        lines.append(
            f"Latency p95 per interval: /auth/me {min(p[1] for p in me):.0f}-{max(p[1] for p in me):.0f} ms, "
            f"OCR stream {min(p[1] for p in ocr):.0f}-{max(p[1] for p in ocr):.0f} ms."
        )
    lines += [""] + [f"- {'ok' if c.passed else 'FAILED'} {c.name}: {c.detail}" for c in result.checks]
    if plot_name:
        lines += ["", f"![RSS and latency over time]({plot_name})"]
    lines.append("")
    lines.append(f"Result: {'pass' if result.passed else 'FAIL'}")
    return "\n".join(lines) + "\n"


def plot(result: SoakResult, path: Path) -> None:
    """RSS per service and p50/p95 latency per kind over time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    minutes = [s.minute for s in result.samples]
    for service in result.samples[-1].rss_mib:
        top.plot(minutes, [s.rss_mib.get(service, np.nan) for s in result.samples], marker=".", label=service)
    top.axvline(result.warmup_s / 60, color="grey", linestyle=":", label="end of warm-up")
    top.set_ylabel("RSS (MiB, process tree)")
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)
    for kind in KINDS:
        points = [(s.minute, s.latency_ms[kind]) for s in result.samples if kind in s.latency_ms]
        if points:
            bottom.plot([p[0] for p in points], [p[1][1] for p in points], marker=".", label=f"{kind} p95")
            bottom.plot(
                [p[0] for p in points], [p[1][0] for p in points], linestyle="--", label=f"{kind} p50"
            )
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("minutes")
    bottom.legend(loc="upper left", fontsize="small", ncol=2)
    bottom.grid(alpha=0.3)
    figure.suptitle("ocrmesh soak: RSS and latency")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_samples(result: SoakResult, path: Path) -> None:
    """Every sample as CSV: minute, then per service RSS/fds/threads, connections, channels."""
    services = list(result.samples[-1].rss_mib)
    header = ["minute", *(f"{s}_{m}" for s in services for m in ("rss_mib", "fds", "threads"))]
    rows = [",".join([*header, "pg_connections", "rabbit_channels", "calls", "server_errors"])]
    for s in result.samples:
        cells = [f"{s.minute:.2f}"]
        for service in services:
            cells += [
                f"{s.rss_mib.get(service, 0):.1f}",
                str(s.fds.get(service, 0)),
                str(s.threads.get(service, 0)),
            ]
        cells += [str(s.pg_connections), str(s.rabbit_channels), str(s.calls), str(s.server_errors)]
        rows.append(",".join(cells))
    path.write_text("\n".join(rows) + "\n")
