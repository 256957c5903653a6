"""The commands compose runs besides the services (healthchecks, the signing-key init), taken
from docker-compose.yml and run here against live servers and real files. Only `python`
(the image's environment) and the address inside the container are swapped for ours."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from auth_svc.app import signer_for
from auth_svc.keys import load_private_key
from auth_svc.settings import AuthSettings
from harness.deployment import (
    APP_SERVICES,
    compose_env,
    environment,
    healthcheck_argv,
    load_compose,
    services,
    settings_from,
)
from harness.ports import free_port
from notifier.health import HealthFile
from ocrmesh.platform.grpc_server import create_server

COMMAND_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def svc() -> dict[str, dict[str, Any]]:
    return services(load_compose(compose_env()))


def here(argv: list[str], replacements: Mapping[str, str] | None = None) -> list[str]:
    """`argv` as it runs on this machine: our interpreter, our addresses."""
    replaced = []
    for arg in argv:
        for old, new in (replacements or {}).items():
            arg = arg.replace(old, new)
        replaced.append(arg)
    assert replaced[0] == "python"
    return [sys.executable, *replaced[1:]]


def run(argv: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # cwd outside the repository: in the image, only the installed packages are importable.
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("name", ["auth", "ocr"])
async def test_grpc_healthcheck_passes_only_while_the_server_is_serving(
    name: str, svc: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    argv = healthcheck_argv(svc[name])
    mesh, port = create_server([], host="127.0.0.1")
    await mesh.start(serving=False)
    command = here(argv, {argv[-1]: f"127.0.0.1:{port}"})
    try:
        starting = await asyncio.to_thread(run, command, tmp_path)
        assert starting.returncode == 1, starting.stdout + starting.stderr
        await mesh.set_serving(True)
        serving = await asyncio.to_thread(run, command, tmp_path)
        assert serving.returncode == 0, serving.stdout + serving.stderr
    finally:
        await mesh.stop(0)
    stopped = await asyncio.to_thread(run, command, tmp_path)
    assert stopped.returncode == 1


@pytest.fixture
def gateway_process(svc: dict[str, dict[str, Any]], tmp_path: Path) -> Iterator[int]:
    """`python -m gateway` with its compose environment, on a free port, nothing behind it."""
    port = free_port()
    env = {
        **os.environ,
        **environment(svc["gateway"]),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        # Nothing listens there: /healthz must not depend on the backends.
        "AUTH_ADDR": "127.0.0.1:1",
        "OCR_ADDR": "127.0.0.1:1",
        "SHUTDOWN_GRACE_SECONDS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_gateway_healthcheck_passes_against_the_running_gateway_and_fails_without_it(
    svc: dict[str, dict[str, Any]], gateway_process: int, tmp_path: Path
) -> None:
    command = here(healthcheck_argv(svc["gateway"]), {"127.0.0.1:8000": f"127.0.0.1:{gateway_process}"})
    assert command != here(healthcheck_argv(svc["gateway"])), "the check names 127.0.0.1:8000"
    # Polling as Docker does during start_period; the deadline only bounds a broken start.
    deadline = time.monotonic() + COMMAND_TIMEOUT
    result = run(command, tmp_path)
    while result.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr

    nobody = here(healthcheck_argv(svc["gateway"]), {"127.0.0.1:8000": f"127.0.0.1:{free_port()}"})
    assert run(nobody, tmp_path).returncode != 0


def test_notifier_healthcheck_follows_the_health_file_the_consumer_writes(
    svc: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    health_file = tmp_path / "notifier.health"
    env = {**environment(svc["notifier"]), "NOTIFIER_HEALTH_FILE": str(health_file)}
    command = here(healthcheck_argv(svc["notifier"]))
    before_start = run(command, tmp_path, env)
    assert before_start.returncode == 1, before_start.stdout + before_start.stderr
    # What the consumer loop does while it runs.
    HealthFile(health_file).beat(connected=True)
    running = run(command, tmp_path, env)
    assert running.returncode == 0, running.stdout + running.stderr


def test_key_init_writes_a_private_key_once_that_auth_svc_loads_in_production(
    svc: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "keys" / "auth_signing_key.pem"
    command = here(svc["auth-keys"]["command"])
    env = {"AUTH_SIGNING_KEY_FILE": str(key_file)}

    first = run(command, tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    written = key_file.read_bytes()
    load_private_key(key_file)

    # Every later `docker compose up` runs it again: the key must survive.
    again = run(command, tmp_path, env)
    assert again.returncode == 0, again.stderr
    assert key_file.read_bytes() == written

    # auth_svc, configured as compose configures it, signs with that key.
    auth = next(app for app in APP_SERVICES if app.name == "auth")
    settings = settings_from(
        auth, {**environment(svc["auth"]), "AUTH_SIGNING_KEY_FILE": str(key_file)}, monkeypatch
    )
    assert isinstance(settings, AuthSettings)
    assert not settings.may_generate_key
    signer = signer_for(settings)
    assert len(signer.public_keys()) == 1
