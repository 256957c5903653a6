"""docker-compose.yml's variables: required secrets stop compose with a message, optional
variables have the default .env.example documents, interpolation follows compose's rules, and
docker compose itself accepts the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.deployment import (
    COMPOSE_FILE,
    SAMPLE_SECRETS,
    MissingVariable,
    compose_env,
    env_example,
    interpolate,
    load_compose,
    raw_compose_text,
    references,
)


def compose_references() -> list[Any]:
    return references(raw_compose_text())


def test_required_secrets_stop_compose_with_a_message_and_are_documented() -> None:
    refs = compose_references()
    required = {r.name for r in refs if r.op == ":?"}
    assert required == set(SAMPLE_SECRETS)
    for ref in refs:
        if ref.name in required:
            # Every use is guarded: one bare ${POSTGRES_PASSWORD} would put an empty password in a URL.
            assert ref.op == ":?", f"${{{ref.name}}} used without :?"
            assert ".env" in ref.arg, "the message should say where to set it"
    example = env_example()
    assert set(example.required) == required
    assert all(value == "" for value in example.required.values()), ".env.example holds no secret"


def test_compose_refuses_to_start_without_the_secrets() -> None:
    with pytest.raises(MissingVariable) as missing:
        load_compose({})
    assert missing.value.name in SAMPLE_SECRETS


def test_every_optional_variable_is_documented_with_the_default_compose_uses() -> None:
    defaults: dict[str, set[str]] = {}
    for ref in compose_references():
        if ref.op != ":?":
            assert ref.op == ":-", f"${{{ref.name}}} should have a default or be required"
            defaults.setdefault(ref.name, set()).add(ref.arg)
    assert all(len(values) == 1 for values in defaults.values()), f"inconsistent defaults: {defaults}"
    documented = env_example().optional
    assert set(documented) == set(defaults)
    for name, values in defaults.items():
        assert documented[name] == next(iter(values)), name


def test_interpolation_follows_the_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${UNSET:-d} ${EMPTY-d} $$SET $SET", env) == "x d d  $SET x"
    with pytest.raises(MissingVariable):
        interpolate("${EMPTY:?no}", env)
    assert interpolate("${EMPTY?no}", env) == ""


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not docker_compose_available(), reason="no docker compose plugin on this machine")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    # `config` validates against the compose schema without a daemon.
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in compose_env().items()))
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
