"""Each image's environment, made the way the Dockerfile makes it (uv.lock, no dev tools, the
extras compose builds it with, the project not editable), runs its service's code: nothing
the service imports is missing from its extras, and the files it needs ship in the wheel.

Built offline from uv's cache, which `make install` has filled; skipped when uv or the
cache is not there. Docker itself is not needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.deployment import (
    APP_SERVICES,
    ROOT,
    AppService,
    compose_env,
    dockerfile_stages,
    load_compose,
    services,
)

UV = ROOT / ".tools" / "bin" / "uv"

# What each image must be able to do, beyond importing its entrypoint and the health probe.
CHECKS = {
    "auth": (
        # Migrations are package data: they must be in the installed wheel.
        "from alembic.script import ScriptDirectory\n"
        "from auth_svc.db import alembic_config\n"
        "assert ScriptDirectory.from_config(alembic_config()).get_current_head()\n"
    ),
    # The default engine ships in the image: its models load and read a rendered line.
    "ocr": (
        "from ocr_svc.engines import create_engine, warm_up\n"
        "from ocr_svc.settings import OcrSettings\n"
        "warm_up(create_engine(OcrSettings(ocr_workers=1)))\n"
    ),
    "notifier": "from notifier.app import create_app\n",
    # Building the app registers the upload routes, which need python-multipart.
    "gateway": (
        "from gateway.app import create_app\n"
        "from gateway.settings import GatewaySettings\n"
        "create_app(GatewaySettings())\n"
    ),
}

pytestmark = pytest.mark.skipif(not UV.exists(), reason="no .tools/bin/uv (run make install)")


@pytest.fixture(scope="module")
def svc() -> dict[str, dict[str, Any]]:
    return services(load_compose(compose_env()))


def sync_command(extras: list[str], *, dry_run: bool = False) -> list[str]:
    # The Dockerfile's final sync, offline.
    command = [str(UV), "sync", "--frozen", "--no-dev", "--no-editable", "--offline"]
    command += ["--python", sys.executable, *(f"--extra={extra}" for extra in extras)]
    return command + (["--dry-run"] if dry_run else [])


def sync(extras: list[str], target: Path, *, dry_run: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sync_command(extras, dry_run=dry_run),
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(target), "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_sync_here_is_the_one_the_dockerfile_runs() -> None:
    final_sync = [i.args for i in dockerfile_stages()[0].instructions if "uv sync" in i.args][-1]
    for flag in ("--frozen", "--no-dev", "--no-editable"):
        assert flag in final_sync.split()


@pytest.mark.parametrize("app", APP_SERVICES, ids=[app.name for app in APP_SERVICES])
def test_each_image_environment_runs_its_service(
    app: AppService, svc: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    extras = svc[app.name]["build"]["args"]["EXTRAS"].split()
    venv = tmp_path / "venv"
    synced = sync(extras, venv)
    if synced.returncode != 0 and "offline" in synced.stderr.lower():
        pytest.skip(f"uv's cache lacks a package for {extras}: {synced.stderr[-300:]}")
    assert synced.returncode == 0, synced.stderr

    module = app.module
    script = (
        f"import {module}, {module}.__main__, ocrmesh.platform.health_probe\n"
        f"assert 'site-packages' in {module}.__file__, {module}.__file__\n" + CHECKS[app.name]
    )
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    before = files_under(tmp_path)
    # -I: no current directory, no PYTHONPATH; only what is installed counts, as in the image.
    # -B: no bytecode written, like PYTHONDONTWRITEBYTECODE=1 there.
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-B", "-c", script],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # In the image the environment and the working directory belong to root, and the service
    # does not: anything written there would fail with "permission denied".
    assert files_under(tmp_path) == before, "the service wrote into its environment or working directory"


def files_under(path: Path) -> set[Path]:
    return set(path.rglob("*"))


def test_the_keras_build_argument_installs_keras_ocr_and_tensorflow(tmp_path: Path) -> None:
    # A dry run: the lock resolves for the keras image without installing 2 GB here.
    planned = sync(["ocr", "keras"], tmp_path / "venv", dry_run=True)
    assert planned.returncode == 0, planned.stderr
    plan = planned.stdout + planned.stderr
    for package in ("keras-ocr==", "tensorflow-cpu==", "tf-keras==", "rapidocr=="):
        assert f" {package}" in plan, package
    default = sync(["ocr"], tmp_path / "venv", dry_run=True)
    assert " tensorflow" not in default.stdout + default.stderr, "the default OCR image stays small"
