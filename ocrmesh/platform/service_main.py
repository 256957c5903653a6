"""`python -m auth_svc`, `python -m ocr_svc`: the start-up every gRPC service shares.

A service's `__main__` says what is its own in a `GrpcService`: its name and settings
class, where it listens, how its app is built and started, and which exceptions mean it
cannot start. `run_grpc_service` does the rest, in this order:

1. settings from the environment (exit code 2 when invalid), then JSON logs;
2. `/metrics` served by this process (with a supervisor, by the supervisor, which adds up
   its workers');
3. `serve_in_processes`: the service in this process, or in N forked workers sharing the
   port with SO_REUSEPORT (AUTH_PROCESSES, OCR_PROCESSES) under a supervisor that replaces
   a worker that dies; a service that says `isolate_crashes` (ocr_svc) is supervised even
   with one process, so that a crash in native code costs calls, not the service;
4. in each serving process: tracing on (when the environment asks), the app built and
   started, its supervisor told it serves, served until SIGTERM/SIGINT, then stopped
   gracefully.

A start-up failure the service declares (`StartFailure`) is reported once, without a stack
trace, and becomes the process's exit code (`ExitCode`), which the supervisor reads: a
configuration the service cannot run with or an engine that cannot load stops it, a
dependency that is not there yet gets the worker restarted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ocrmesh.platform.grpc_server import MeshServer, run_until_signalled
from ocrmesh.platform.logs import configure_logging
from ocrmesh.platform.metrics import metrics_served
from ocrmesh.platform.processes import (
    ExitCode,
    process_count,
    report_serving,
    runs_supervised,
    serve_in_processes,
)
from ocrmesh.platform.settings import ServiceSettings, load_settings
from ocrmesh.platform.telemetry import tracing

S = TypeVar("S", bound=ServiceSettings)

# Seconds a stopping worker gets beyond its own shutdown grace before the supervisor kills it.
_STOP_MARGIN_S = 10.0


class ServedApp(Protocol):
    """A built gRPC service, as `run_grpc_service` drives it."""

    @property
    def mesh(self) -> MeshServer:
        """The server SIGTERM stops first (health NOT_SERVING, running calls drained)."""
        ...

    async def start(self) -> None:
        """Serve. Raises one of the service's `StartFailure` exceptions when it cannot."""
        ...

    async def stop(self, grace: float) -> None:
        """Release the rest once `mesh` has stopped (grace 0: after a failed start)."""
        ...


@dataclass(frozen=True)
class Listening:
    """Where a service listens, read from its settings."""

    host: str
    port: int
    #: The settings field holding `port`: each serving process gets a copy of the settings
    #: with the port actually reserved (port 0 picks one free port for all the workers).
    port_setting: str
    metrics_port: int | None
    #: As configured: 0 means one process per usable core.
    processes: int


@dataclass(frozen=True)
class StartFailure(Generic[S]):
    """Exceptions that mean the service cannot start: `report` says why (once, without a
    stack trace) and the process exits with `exit_code`."""

    exceptions: tuple[type[Exception], ...]
    exit_code: ExitCode
    report: Callable[[S, Exception], None]


@dataclass(frozen=True)
class GrpcService(Generic[S]):
    """What is particular to one gRPC service's start-up (see the module docstring)."""

    #: The `service` of its log lines, its tracing service name, its worker process names.
    name: str
    settings: type[S]
    listening: Callable[[S], Listening]
    #: Builds the app in the serving process, inside the event loop that will run it.
    create_app: Callable[[S], ServedApp]
    start_failures: Sequence[StartFailure[S]] = ()
    #: Logs what is about to start, given the settings and the number of processes.
    announce: Callable[[S, int], None] | None = None
    #: Serve from a supervised worker even with one process: for a service that runs native
    #: code on untrusted input, where a crash (SIGSEGV) must cost that worker's calls, not
    #: the service (the supervisor stays up and starts a new worker).
    isolate_crashes: bool = False


def run_grpc_service(service: GrpcService[S]) -> int:
    """Run `service` from the environment until SIGTERM/SIGINT: the process's exit code."""
    settings = load_settings(service.settings)
    configure_logging(service.name, settings.log_level)
    where = service.listening(settings)
    processes = process_count(where.processes)
    if service.announce is not None:
        service.announce(settings, processes)
    supervised = runs_supervised(processes, supervised=service.isolate_crashes)
    # Served by this process. With a supervisor that is not where the values are recorded:
    # it and its workers make `processes + 1` processes, whose values it adds up.
    behind_metrics = processes + 1 if supervised else processes
    with metrics_served(where.metrics_port, host=where.host, processes=behind_metrics):
        return serve_in_processes(
            processes,
            lambda port: serve_process(service, settings.model_copy(update={where.port_setting: port})),
            host=where.host,
            port=where.port,
            name=service.name,
            stop_timeout=settings.shutdown_grace_seconds + _STOP_MARGIN_S,
            supervised=supervised,
        )


def serve_process(service: GrpcService[S], settings: S) -> int:
    """One process of `service`, serving until signalled: its exit code."""
    return asyncio.run(_serve(service, settings))


async def _serve(service: GrpcService[S], settings: S) -> int:
    failures = tuple(kind for failure in service.start_failures for kind in failure.exceptions)
    # In the serving process (a forked worker's own), before the server and engines exist.
    with tracing(service.name):
        app: ServedApp | None = None
        try:
            app = service.create_app(settings)
            await app.start()
        except failures as exc:
            code = _reported(service, settings, exc)
            if app is not None:
                await app.stop(0)  # what the failed start had opened (threads, channels)
            return code
        report_serving()  # to the supervisor, if any: a death from now on is a crash
        await run_until_signalled(app.mesh, settings.shutdown_grace_seconds)
        await app.stop(settings.shutdown_grace_seconds)
    return ExitCode.OK


def _reported(service: GrpcService[S], settings: S, exc: Exception) -> ExitCode:
    failure = next(f for f in service.start_failures if isinstance(exc, f.exceptions))
    failure.report(settings, exc)
    return failure.exit_code


__all__ = [
    "ExitCode",
    "GrpcService",
    "Listening",
    "ServedApp",
    "StartFailure",
    "run_grpc_service",
    "serve_process",
]
