"""Processes of one gRPC service on one port, as grpc's own `examples/python/multiprocessing`
does it, under a supervisor that outlives their crashes.

Python runs one thread of Python at a time per process, so a gRPC service that is busy in
Python (auth_svc's calls, ocr_svc's pre- and post-processing) uses one core however many
threads it has. `serve_in_processes(n, ...)` forks `n` copies of the service; each builds
its own server, channels, thread pools and connection pools *after* the fork and binds the
same port with `SO_REUSEPORT` (gRPC sets it on Linux), so the kernel spreads incoming
connections over them.

A service that runs native code on untrusted input (ocr_svc: image and PDF decoders,
onnxruntime, Tesseract) is supervised even with one process (`supervised=True`): a crash
there (SIGSEGV, SIGKILL from the OOM killer) ends that worker's calls, a new worker takes
its place, and the service's own process, the one `make up` or the container runs, stays.

The parent only supervises: it forwards SIGTERM/SIGINT to the workers once, waits for them
to stop gracefully, restarts a worker that dies, and exits 0 after a clean stop. A worker
that cannot start is not restarted for ever: an exit code in `START_FAILURE_CODES` stops the
supervisor at once with that code, any other death before the worker said it serves
(`report_serving`) counts as a failed start, and after `_MAX_FAILED_STARTS` in a row the
supervisor gives up. A worker that dies after it served is a crash and always replaced:
crashes cost calls, never the service. Workers live in their own process group, so a
Ctrl-C in a terminal reaches the parent alone, and die with the parent
(`PR_SET_PDEATHSIG`) if it is killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
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
# Workers of one slot that died in a row before serving: beyond this it is a crash loop
# (a dependency that stays away, a bug at start-up), and the supervisor gives up.
_MAX_FAILED_STARTS = 5
_PR_SET_PDEATHSIG = 1
# How often the supervisor looks at its workers: the longest a dead one waits to be replaced.
_POLL_S = 0.1

# In a supervised worker: the flag its supervisor reads (see `report_serving`).
_serving_flag: mmap.mmap | None = None


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def process_count(configured: int) -> int:
    """`configured`, where 0 means one process per usable core."""
    return configured if configured > 0 else usable_cores()


def runs_supervised(count: int, *, supervised: bool) -> bool:
    """Whether `serve_in_processes(count, ..., supervised=supervised)` serves from forked
    workers under a supervisor (then `/metrics` must add up other processes' values)."""
    return supervised or count > 1


def report_serving() -> None:
    """Tell this worker's supervisor that it serves: from now on its death is a crash, and
    it is replaced whenever it dies. Call once the service is started (for ocr_svc: the
    engine loaded and warm). Does nothing in a process without a supervisor."""
    if _serving_flag is not None:
        _serving_flag[0] = 1


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


def _worker_main(serve: Callable[[int], int], port: int, serving: mmap.mmap) -> None:
    global _serving_flag
    os.setpgid(0, 0)
    _die_with_parent()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    _serving_flag = serving
    raise SystemExit(serve(port))


@dataclass
class _Worker:
    process: BaseProcess
    #: One byte of anonymous memory shared with the worker (no file), set by its
    #: `report_serving()`. Read without a lock: a worker killed while writing it cannot
    #: leave the supervisor stuck.
    serving: mmap.mmap
    started_at: float
    announced: bool = False

    @property
    def has_served(self) -> bool:
        return self.serving[0] == 1


@dataclass
class _Supervisor:
    name: str
    serve: Callable[[int], int]
    port: int
    count: int
    stop_timeout: float
    workers: dict[int, _Worker] = field(default_factory=dict)
    failed_starts: dict[int, int] = field(default_factory=dict)
    stopping: bool = False
    exit_code: int = 0

    def __post_init__(self) -> None:
        self.context = multiprocessing.get_context("fork")

    def start(self, slot: int) -> None:
        serving = mmap.mmap(-1, 1)  # MAP_SHARED | MAP_ANONYMOUS: the forked worker writes it
        process = self.context.Process(
            target=_worker_main,
            args=(self.serve, self.port, serving),
            name=f"{self.name}-{slot}",
            daemon=False,
        )
        process.start()
        self.workers[slot] = _Worker(process, serving, time.monotonic())
        log.info("worker started", extra={"worker": slot, "worker_pid": process.pid})

    def on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def check_workers(self) -> None:
        for slot, worker in list(self.workers.items()):
            if worker.process.is_alive():
                if worker.has_served and not worker.announced:
                    worker.announced = True
                    self.failed_starts[slot] = 0
                    log.info(
                        "worker serving",
                        extra={
                            "worker": slot,
                            "worker_pid": worker.process.pid,
                            "start_seconds": round(time.monotonic() - worker.started_at, 2),
                        },
                    )
                continue
            if not self.replace(slot, worker):
                return

    def replace(self, slot: int, worker: _Worker) -> bool:
        """Start a new worker in place of the dead `worker`, or decide to stop (False)."""
        process = worker.process
        process.join()
        if process.pid is not None:
            worker_exited(process.pid)
        code = process.exitcode if process.exitcode is not None else 1
        facts = {"worker": slot, "worker_pid": process.pid, "exit_code": code}
        if code in START_FAILURE_CODES:
            log.error("worker cannot start; stopping", extra=facts)
            self.stopping, self.exit_code = True, code
            return False
        if worker.has_served:
            # A crash while serving (native code, the OOM killer): it cost that worker's calls.
            self.failed_starts[slot] = 0
            log.warning("worker died; starting a new one", extra=facts)
        else:
            self.failed_starts[slot] = self.failed_starts.get(slot, 0) + 1
            if self.failed_starts[slot] > _MAX_FAILED_STARTS:
                log.error("workers keep dying before they serve; stopping", extra=facts)
                self.stopping, self.exit_code = True, code if code > 0 else 1
                return False
            log.warning(
                "worker died before serving; starting a new one",
                extra={**facts, "failed_starts": self.failed_starts[slot]},
            )
        self.start(slot)
        return True

    def stop_all(self) -> None:
        for worker in self.workers.values():
            pid = worker.process.pid
            if worker.process.is_alive() and pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for slot, worker in self.workers.items():
            process = worker.process
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
                time.sleep(_POLL_S)
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
    supervised: bool = False,
) -> int:
    """Run `serve(port)` (blocking, returns an exit code) in `count` processes sharing
    host:port, and return the exit code for the whole service.

    With `count == 1` and not `supervised` it is simply `serve(port)` in this process.
    Otherwise this process becomes the supervisor of `count` forked workers (see the module
    docstring): the port is reserved first (so port 0 means one free port for all of them),
    nothing gRPC-related may have been created in this process yet (import only), `serve`
    calls `report_serving()` once it serves, and each worker gets `stop_timeout` seconds
    after SIGTERM before it is killed.
    """
    if not runs_supervised(count, supervised=supervised):
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
    "report_serving",
    "reserve_port",
    "runs_supervised",
    "serve_in_processes",
    "usable_cores",
]
