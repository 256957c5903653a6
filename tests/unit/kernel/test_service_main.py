"""The gRPC services' start-up: declared start-up failures become exit codes without a stack
trace, and a started service serves until SIGTERM, then stops its server, then the rest."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field

import pytest

from ocrmesh.platform.grpc_server import MeshServer, create_server
from ocrmesh.platform.service_main import ExitCode, GrpcService, Listening, StartFailure, serve_process
from ocrmesh.platform.settings import ServiceSettings


class ExampleSettings(ServiceSettings):
    example_port: int = 0


class KeysMissing(Exception):
    pass


class EngineMissing(Exception):
    pass


@dataclass
class ExampleApp:
    mesh: MeshServer
    events: list[str]
    start_error: Exception | None = None

    async def start(self) -> None:
        await self.mesh.start()
        if self.start_error is not None:
            raise self.start_error
        self.events.append("started")
        # After start: the start-up is waiting for the signal by then.
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)

    async def stop(self, grace: float) -> None:
        await self.mesh.stop(grace)  # again after SIGTERM, as ocr_svc's app does: harmless
        self.events.append(f"app stopped, grace {grace}")


@dataclass
class Example:
    build_error: Exception | None = None
    start_error: Exception | None = None
    events: list[str] = field(default_factory=list)

    def create_app(self, settings: ExampleSettings) -> ExampleApp:
        if self.build_error is not None:
            raise self.build_error
        mesh, _ = create_server([], port=settings.example_port)
        return ExampleApp(mesh, self.events, self.start_error)

    def report(self, settings: ExampleSettings, exc: Exception) -> None:
        self.events.append(f"reported {exc}")

    def service(self) -> GrpcService[ExampleSettings]:
        return GrpcService(
            name="example",
            settings=ExampleSettings,
            listening=lambda s: Listening("127.0.0.1", s.example_port, "example_port", None, 1),
            create_app=self.create_app,
            start_failures=[
                StartFailure((KeysMissing,), ExitCode.CONFIGURATION, self.report),
                StartFailure((EngineMissing,), ExitCode.ENGINE_UNAVAILABLE, self.report),
            ],
        )


def test_a_declared_failure_while_building_is_reported_and_becomes_its_exit_code() -> None:
    example = Example(build_error=KeysMissing("no key file"))

    assert serve_process(example.service(), ExampleSettings(shutdown_grace_seconds=1)) == 2
    assert example.events == ["reported no key file"]


def test_a_declared_failure_while_starting_is_reported_then_what_started_is_stopped() -> None:
    example = Example(start_error=EngineMissing("no weights"))

    assert serve_process(example.service(), ExampleSettings(shutdown_grace_seconds=1)) == 3
    assert example.events == ["reported no weights", "app stopped, grace 0"]


def test_an_undeclared_failure_is_not_hidden() -> None:
    example = Example(build_error=RuntimeError("a bug"))

    with pytest.raises(RuntimeError, match="a bug"):
        serve_process(example.service(), ExampleSettings(shutdown_grace_seconds=1))
    assert example.events == []


def test_a_started_service_serves_until_sigterm_then_stops_with_its_grace() -> None:
    example = Example()

    assert serve_process(example.service(), ExampleSettings(shutdown_grace_seconds=0.5)) == 0
    assert example.events == ["started", "app stopped, grace 0.5"]
