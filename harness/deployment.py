"""The deployment files as Docker and the process managers read them, so tests can hold them
against the code without a Docker daemon: docker-compose.yml and .env.example
(`harness.compose_file`), the Dockerfile and .dockerignore (`harness.dockerfile`), and here the
Procfile, pyproject.toml and the Makefile. Everything is importable from this module."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from harness.compose_file import (
    APP_SERVICES,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    SAMPLE_SECRETS,
    AppService,
    EnvExample,
    MissingVariable,
    Mount,
    PublishedPort,
    Reference,
    command,
    compose_env,
    depends_on,
    env_example,
    environment,
    healthcheck_argv,
    host_of,
    interpolate,
    load_compose,
    mounts,
    published_ports,
    raw_compose_text,
    references,
    seconds,
    services,
    settings_from,
    unquote,
)
from harness.dockerfile import (
    DOCKERFILE,
    DOCKERIGNORE,
    Copy,
    Instruction,
    Stage,
    copies,
    dockerfile_instructions,
    dockerfile_stages,
    dockerignore_rules,
    global_args,
    in_build_context,
)
from harness.repo import ROOT

PROCFILE = ROOT / "Procfile"
PYPROJECT = ROOT / "pyproject.toml"
MAKEFILE = ROOT / "Makefile"

__all__ = [
    "APP_SERVICES",
    "COMPOSE_FILE",
    "DOCKERFILE",
    "DOCKERIGNORE",
    "ENV_EXAMPLE",
    "MAKEFILE",
    "PROCFILE",
    "PYPROJECT",
    "ROOT",
    "SAMPLE_SECRETS",
    "AppService",
    "Copy",
    "EnvExample",
    "Instruction",
    "MissingVariable",
    "Mount",
    "PublishedPort",
    "Reference",
    "Stage",
    "command",
    "compose_env",
    "copies",
    "depends_on",
    "dockerfile_instructions",
    "dockerfile_stages",
    "dockerignore_rules",
    "env_example",
    "environment",
    "global_args",
    "healthcheck_argv",
    "host_of",
    "in_build_context",
    "interpolate",
    "load_compose",
    "makefile_uv_version",
    "mounts",
    "procfile",
    "published_ports",
    "pyproject",
    "raw_compose_text",
    "references",
    "seconds",
    "services",
    "settings_from",
    "unquote",
]


# ---- Procfile


def procfile() -> dict[str, str]:
    """Process name -> command line."""
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, cmd = line.partition(":")
        entries[name.strip()] = cmd.strip()
    return entries


# ---- pyproject / Makefile


def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())


def makefile_uv_version() -> str:
    match = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", MAKEFILE.read_text(), re.MULTILINE)
    assert match, "Makefile pins no UV_VERSION"
    return match[1]
