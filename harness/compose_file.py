"""Reads docker-compose.yml and the .env made from .env.example the way Docker Compose reads
them (the parts ocrmesh uses): variable interpolation, and each service's environment,
command, healthcheck, ports, dependencies and mounts, normalised over compose's alternative
spellings. Tests hold them against the services' settings without a Docker daemon."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic_settings import BaseSettings

from auth_svc.settings import AuthSettings
from gateway.settings import GatewaySettings
from harness.repo import ROOT
from notifier.settings import NotifierSettings
from ocr_svc.settings import OcrSettings

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"


@dataclass(frozen=True)
class AppService:
    """One ocrmesh service as compose runs it."""

    name: str  # the compose service, also the Procfile process name
    module: str  # what `python -m` runs
    settings: type[BaseSettings]
    extra: str  # the pyproject extra with its dependencies


APP_SERVICES = (
    AppService("auth", "auth_svc", AuthSettings, "auth"),
    AppService("ocr", "ocr_svc", OcrSettings, "ocr"),
    AppService("notifier", "notifier", NotifierSettings, "notifier"),
    AppService("gateway", "gateway", GatewaySettings, "gateway"),
)

# Values for the required secrets, standing in for a filled-in .env.
SAMPLE_SECRETS = {"POSTGRES_PASSWORD": "pgsecret123", "RABBITMQ_PASSWORD": "mqsecret456"}


# ---- variable interpolation (compose spec: $VAR, ${VAR}, ${VAR:-x}, ${VAR-x}, ${VAR:?e}, ...)

_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is unset (or empty): compose refuses to start."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class Reference:
    name: str
    op: str | None  # None, "-", ":-", "?", ":?", "+", ":+"
    arg: str


def references(text: str) -> list[Reference]:
    """Every variable `text` refers to, in order."""
    found = []
    for match in _REFERENCE.finditer(text):
        if match["named"]:
            found.append(Reference(match["named"], None, ""))
        elif match["braced"] is not None:
            braced = _BRACED.fullmatch(match["braced"])
            if braced is None:
                raise ValueError(f"invalid interpolation ${{{match['braced']}}}")
            found.append(Reference(braced["name"], braced["op"], braced["arg"] or ""))
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`text` with its variables substituted from `env`, as compose does."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.fullmatch(match["braced"])
        if braced is None:
            raise ValueError(f"invalid interpolation ${{{match['braced']}}}")
        name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
        value = env.get(name)
        # With a colon, an empty value counts as unset.
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op is None:
            return value or ""
        if op.endswith("-"):
            return arg if unset else str(value)
        if op.endswith("?"):
            if unset:
                raise MissingVariable(name, arg)
            return str(value)
        return "" if unset else arg

    return _REFERENCE.sub(substitute, text)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def raw_compose_text() -> str:
    return COMPOSE_FILE.read_text()


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml parsed (YAML anchors and merge keys resolved) and interpolated."""
    tree = yaml.safe_load(raw_compose_text())
    assert isinstance(tree, dict)
    return dict(_interpolate_tree(tree, env))


def compose_env() -> dict[str, str]:
    """The variables compose sees with .env made from .env.example and the secrets filled in."""
    example = env_example()
    env = {name: value for name, value in example.required.items() if value}
    env.update(SAMPLE_SECRETS)
    return env


def services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


# ---- one service's parts, normalised over compose's alternative spellings


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {name: value for name, value in pairs}
    return {name: _env_value(value) for name, value in raw.items()}


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def command(service: Mapping[str, Any]) -> list[str]:
    raw = service.get("command")
    if raw is None:
        return []
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    """The healthcheck as the argv Docker runs ([] when there is none)."""
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        return []
    test = check.get("test")
    if test is None:
        return []
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    kind, *rest = test
    if kind == "CMD":
        return list(rest)
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    return []


@dataclass(frozen=True)
class PublishedPort:
    host_ip: str
    host_port: str
    container_port: int


def published_ports(service: Mapping[str, Any]) -> list[PublishedPort]:
    found = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            found.append(
                PublishedPort(
                    str(entry.get("host_ip", "")), str(entry.get("published", "")), int(entry["target"])
                )
            )
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            found.append(PublishedPort(parts[0], parts[1], int(parts[2])))
        elif len(parts) == 2:
            found.append(PublishedPort("", parts[0], int(parts[1])))
        else:
            found.append(PublishedPort("", "", int(parts[0])))
    return found


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """Dependency -> condition (the short list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    found = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            found.append(Mount(entry["source"], entry["target"], bool(entry.get("read_only"))))
            continue
        source, target, *mode = str(entry).split(":")
        found.append(Mount(source, target, "ro" in (mode[0].split(",") if mode else [])))
    return found


_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>h|ms|m|s|us)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


def seconds(duration: str) -> float:
    """A compose duration such as `1m30s` in seconds."""
    parts = list(_DURATION.finditer(duration))
    if not parts or "".join(p.group(0) for p in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(p["value"]) * _UNIT_SECONDS[p["unit"]] for p in parts)


def host_of(value: str) -> str | None:
    """The host a connection setting names: a URL's host, `host:port`'s host, or a bare host."""
    if "://" in value:
        return urlsplit(value).hostname
    host = value.rsplit(":", 1)[0] if ":" in value else value
    return host or None


def settings_from(service: AppService, env: Mapping[str, str], monkeypatch: Any) -> BaseSettings:
    """The service's settings class built from exactly `env`, as the container would build it."""
    for name in service.settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return service.settings()


# ---- .env.example


@dataclass(frozen=True)
class EnvExample:
    required: dict[str, str]  # uncommented NAME=value lines
    optional: dict[str, str]  # commented-out `# NAME=default` lines


_ENV_LINE = re.compile(r"(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)")


def unquote(value: str) -> str:
    """`value` without surrounding whitespace and one pair of matching quotes (.env and
    Dockerfile ARG defaults)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def env_example() -> EnvExample:
    required: dict[str, str] = {}
    optional: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE.fullmatch(line.strip())
        if match is None:
            continue
        target = optional if match["comment"] else required
        target[match["name"]] = unquote(match["value"])
    return EnvExample(required, optional)
