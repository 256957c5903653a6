"""Prometheus metrics every service shares: where they are served, how several processes of
one service add up, and the metrics of the RPCs. The shared rules keep theirs beside them
(ocrmesh.rules.email_events.metrics: the email publisher), each service its own in its
`metrics.py`; docs/observability.md lists them all.

Several processes of one service (AUTH_PROCESSES, OCR_PROCESSES, GATEWAY_WORKERS) use
prometheus-client's multiprocess mode: each process writes its values to files in a fresh
directory (PROMETHEUS_MULTIPROC_DIR), and whoever serves `/metrics` adds them up. The gRPC
services fork their workers from a supervisor that has imported every metric already, so
the supervisor switches the value class before the fork (`use_multiprocess_dir`); a
metric's value is created at its first `labels()` call, in the worker. That is why every
metric of a forked service has labels: an unlabelled one would get its value at import,
in the supervisor, and stay invisible (tests/unit/kernel/test_metrics.py checks it).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
    values,
)

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets (seconds) for calls that take a millisecond (token checks) up to a page
# of OCR (tens of seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# ---- exposition ----------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, or None when this process keeps its own values."""
    return os.environ.get(MULTIPROC_ENV) or None


def use_multiprocess_dir(directory: Path) -> None:
    """Keep metric values in files under `directory` from now on (this process and every
    process it forks or spawns). Values created before stay in this process's memory."""
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


@contextmanager
def multiprocess_values(processes: int) -> Iterator[Path | None]:
    """With more than one process: a fresh directory for their values, used for the block
    (see `use_multiprocess_dir`) and removed after it. With one: nothing to do (None)."""
    if processes <= 1:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="ocrmesh-metrics-"))
    use_multiprocess_dir(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def exposition_registry() -> CollectorRegistry:
    """What `/metrics` shows: every process's values added up in multiprocess mode, else
    this process's registry (with the process and Python collectors)."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render_metrics() -> tuple[bytes, str]:
    """The text exposition of `exposition_registry()` and its content type."""
    return generate_latest(exposition_registry()), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Forget the live gauges of a worker that exited (its counters stay: they still count)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


@contextmanager
def metrics_served(port: int | None, *, host: str, processes: int = 1) -> Iterator[int | None]:
    """Serve `/metrics` on host:port (port 0: a free one) from a thread of this process for
    the block, adding up `processes` processes (multiprocess mode when more than one: start
    them inside the block). Yields the bound port, or None when `port` is None (no metrics
    server). A port that cannot be bound ends the process with exit code 2 (configuration)."""
    if port is None:
        yield None
        return
    with multiprocess_values(processes):
        bind_host = host.strip("[]")
        try:
            server, thread = start_http_server(port, addr=bind_host, registry=exposition_registry())
        except OSError as exc:
            sys.stderr.write(f"cannot serve metrics on {host}:{port}: {exc}\n")
            raise SystemExit(2) from None
        bound = int(server.server_port)
        log.info("serving metrics", extra={"metrics_port": bound, "processes": processes})
        try:
            yield bound
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


# ---- RPCs (recorded by ocrmesh.platform.grpc_interceptors.ServerContextInterceptor) ----------------

GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its end on the server (a stream: to its last message).",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_STREAMS_IN_FLIGHT = Gauge(
    "grpc_server_streams_in_flight",
    "Server-streaming RPCs running now.",
    ["grpc_service", "grpc_method"],
    multiprocess_mode="livesum",
)


class RpcMetrics:
    """The metrics of one RPC method, its children looked up once (the hot path only
    increments). Methods come from registered handlers only, so the labels are bounded."""

    __slots__ = ("_handled", "_latency", "_method", "_service", "streams")

    def __init__(self, full_method: str) -> None:
        self._service, _, self._method = full_method.lstrip("/").rpartition("/")
        self._latency = GRPC_HANDLING_SECONDS.labels(self._service, self._method)
        self._handled: dict[grpc.StatusCode, Counter] = {}
        self.streams = GRPC_STREAMS_IN_FLIGHT.labels(self._service, self._method)

    def handled(self, code: grpc.StatusCode, seconds: float) -> None:
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = GRPC_HANDLED.labels(self._service, self._method, code.name)
        counter.inc()
        self._latency.observe(seconds)


_RPC_METRICS: dict[str, RpcMetrics] = {}


def rpc_metrics(full_method: str) -> RpcMetrics:
    """The `RpcMetrics` of `/package.Service/Method` (made on its first call)."""
    found = _RPC_METRICS.get(full_method)
    if found is None:
        found = _RPC_METRICS[full_method] = RpcMetrics(full_method)
    return found


__all__ = [
    "MULTIPROC_ENV",
    "RpcMetrics",
    "exposition_registry",
    "metrics_served",
    "multiprocess_values",
    "render_metrics",
    "rpc_metrics",
    "use_multiprocess_dir",
    "worker_exited",
]
