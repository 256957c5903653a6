"""Several processes of one gRPC service on one port, as grpc's own
`examples/python/multiprocessing` does it.

Python runs one thread of Python at a time per process, so a gRPC service that is busy in
Python (auth_svc's calls, ocr_svc's pre- and post-processing) uses one core however many
threads it has. `serve_in_processes(n, ...)` forks `n` copies of the service; each builds
its own server, channels, thread pools and connection pools *after* the fork and binds the
same port with `SO_REUSEPORT` (gRPC sets it on Linux), so the kernel spreads incoming
connections over them.

The parent only supervises: it forwards SIGTERM/SIGINT to the workers once, waits for them
to stop gracefully, restarts a worker that dies on its own (not one that fails to start:
that would fail again), and exits 0 after a clean stop. Workers live in their own process
group, so a Ctrl-C in a terminal reaches the parent alone, and die with the parent
(`PR_SET_PDEATHSIG`) if it is killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from multiprocessing.process import BaseProcess

from ocrmesh.platform.metrics import worker_exited

log = logging.getLogger(__name__)


class ExitCode(IntEnum):
    """What a service process's exit code says (its supervisor and orchestrators read it)."""

    OK = 0
    #: A dependency (database, broker) unreachable or misconfigured at start: it may be
    #: there on the next try. Also what an unexpected exception exits with.
    DEPENDENCY_UNREACHABLE = 1
    #: A configuration the service cannot run with (`ocrmesh.platform.settings.load_settings`,
    #: a signing key, a metrics port).
    CONFIGURATION = 2
    #: The engine refused to load (an OCR engine without its models).
    ENGINE_UNAVAILABLE = 3


# Exit codes a worker uses to say "starting again would fail the same way": the supervisor
# stops instead of restarting.
START_FAILURE_CODES = frozenset({ExitCode.CONFIGURATION, ExitCode.ENGINE_UNAVAILABLE})
# A worker that dies this soon after it started is crash-looping: give up after a few.
_EARLY_DEATH_S = 10.0
_MAX_EARLY_DEATHS = 5
_PR_SET_PDEATHSIG = 1


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def process_count(configured: int) -> int:
    """`configured`, where 0 means one process per usable core."""
    return configured if configured > 0 else usable_cores()


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A socket bound (not listening) to host:port with SO_REUSEPORT, to keep the port ours
    while the workers bind it; port 0 picks a free one. Close it after the workers stop."""
    bind_host = host.strip("[]")
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((bind_host, port))
    except OSError:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Linux only; elsewhere a killed parent leaves its workers to their own SIGTERM.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _worker_main(serve: Callable[[int], int], port: int) -> None:
    os.setpgid(0, 0)
    _die_with_parent()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    raise SystemExit(serve(port))


@dataclass
class _Supervisor:
    name: str
    serve: Callable[[int], int]
    port: int
    count: int
    stop_timeout: float
    workers: dict[int, BaseProcess] = field(default_factory=dict)
    started_at: dict[int, float] = field(default_factory=dict)
    early_deaths: int = 0
    stopping: bool = False
    exit_code: int = 0

    def __post_init__(self) -> None:
        self.context = multiprocessing.get_context("fork")

    def start(self, slot: int) -> None:
        process = self.context.Process(
            target=_worker_main, args=(self.serve, self.port), name=f"{self.name}-{slot}", daemon=False
        )
        process.start()
        self.workers[slot] = process
        self.started_at[slot] = time.monotonic()
        log.info("worker started", extra={"worker": slot, "worker_pid": process.pid})

    def on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def check_workers(self) -> None:
        for slot, process in list(self.workers.items()):
            if process.is_alive():
                continue
            process.join()
            if process.pid is not None:
                worker_exited(process.pid)
            code = process.exitcode if process.exitcode is not None else 1
            lived = time.monotonic() - self.started_at[slot]
            if code in START_FAILURE_CODES:
                log.error("worker cannot start; stopping", extra={"worker": slot, "exit_code": code})
                self.stopping, self.exit_code = True, code
                return
            self.early_deaths += lived < _EARLY_DEATH_S
            if self.early_deaths > _MAX_EARLY_DEATHS:
                log.error("workers keep dying at start; stopping", extra={"exit_code": code})
                self.stopping, self.exit_code = True, code or 1
                return
            log.warning("worker died; starting a new one", extra={"worker": slot, "exit_code": code})
            self.start(slot)

    def stop_all(self) -> None:
        for process in self.workers.values():
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for slot, process in self.workers.items():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker did not stop in time; killing it", extra={"worker": slot})
                process.kill()
                process.join()
            if process.pid is not None:
                worker_exited(process.pid)
            if process.exitcode not in (0, None) and self.exit_code == 0:
                self.exit_code = 1 if process.exitcode is None or process.exitcode < 0 else process.exitcode

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.count):
                self.start(slot)
            while not self.stopping:
                self.check_workers()
                time.sleep(0.2)
            log.info("stopping workers", extra={"workers": len(self.workers)})
            self.stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("all workers stopped", extra={"exit_code": self.exit_code})
        return self.exit_code


def serve_in_processes(
    count: int,
    serve: Callable[[int], int],
    *,
    host: str,
    port: int,
    name: str,
    stop_timeout: float,
) -> int:
    """Run `serve(port)` (blocking, returns an exit code) in `count` processes sharing
    host:port, and return the exit code for the whole service.

    With `count == 1` it is simply `serve(port)` in this process. Otherwise the port is
    reserved first (so port 0 means one free port for all of them), nothing gRPC-related
    may have been created in this process yet (import only), and each worker gets
    `stop_timeout` seconds after SIGTERM before it is killed.
    """
    if count <= 1:
        return serve(port)
    reserved, bound_port = reserve_port(host, port)
    try:
        log.info("starting workers", extra={"workers": count, "port": bound_port})
        return _Supervisor(name, serve, bound_port, count, stop_timeout).run()
    finally:
        reserved.close()


__all__ = [
    "START_FAILURE_CODES",
    "ExitCode",
    "process_count",
    "reserve_port",
    "serve_in_processes",
    "usable_cores",
]
